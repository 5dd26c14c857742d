using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Storage;
using CowDisk.Engine.Snapshots;
using CowDisk.Format.Mapping;
using CowDisk.Format.Metadata;
using LiteDB;
using LiteDB.Engine;

namespace CowDisk.Engine.Metadata;

/// <summary>
/// The durable half of the metadata, in LiteDB: one image document and one document per map chunk holding
/// that chunk's extents packed (see docs/FORMAT.md). Never on the I/O path: the responder loads everything
/// at open and writes here only by group commit. LiteDB reads and writes through the storage seam: its data
/// file as a plain stream, its log as checksummed frames (<see cref="FramedLogStream"/>), because LiteDB
/// 5.0.21 neither fsyncs its log on commit nor can tell a torn commit from a whole one.
/// </summary>
internal sealed class MetadataStore : IDisposable
{
    private const string ImageCollection = "image";
    private const string ChunkCollection = "chunks";
    private const string DeadCollection = "dead";
    private const string LayerCollection = "layers";
    private const string EpochCollection = "epochs";
    private const string SnapshotCollection = "snapshots";
    private const string CloneCollection = "clones";
    private const string JournalCollection = "journal";
    private const int ImageDocId = 1;
    private const int PageSize = LogFrameTrailer.PageSize;
    /// <summary>Past this the log is folded into the data file, so long sessions do not grow it without end.</summary>
    private const long CheckpointLogBytes = 64L << 20;

    private readonly IStorageFile _dataFile;
    private IStorageFile _logFile;
    private readonly Func<IStorageFile>? _createLog;   // a writable open of an image without a log creates it at the first write
    private StorageStream? _dataStream;
    private bool _sessionStarted;   // a commit of this session succeeded: from here on a close may checkpoint
    private readonly string _path;
    private readonly Guid _imageId;
    private readonly bool _readOnly;
    private LiteDatabase _db;
    private FramedLogStream _log;

    public ImageRecord Image { get; private set; }

    /// <summary>Bytes of an unfinished (never acknowledged) commit found at open and dropped.</summary>
    public long RecoveredLogBytes { get; }

    /// <summary>
    /// The metadata log's reserved space could not be renewed (the disk is full): commits still fit in the reserve,
    /// so flushes and the close go on, but new extents must not be allocated (their mappings would need room).
    /// </summary>
    public bool SpaceLow => _spaceLow;
    private volatile bool _spaceLow;

    /// <summary>Tries to renew the log's reserve (any thread); true if it is whole again.</summary>
    public bool RenewReserve() => !(_spaceLow = !_log.EnsureReserve());

    /// <summary>Set when a failed commit could not be undone by reloading the durable state: every commit fails.</summary>
    public bool Broken { get; private set; }

    private MetadataStore(IStorageFile dataFile, IStorageFile logFile, Guid imageId, bool readOnly, Func<IStorageFile>? createLog)
    {
        _dataFile = dataFile; _logFile = logFile; _path = dataFile.Path; _imageId = imageId; _readOnly = readOnly;
        _createLog = createLog;
        (_db, _log) = OpenDatabase();
        RecoveredLogBytes = _log.DroppedBytes;
        Image = ReadImage();
    }

    public static MetadataStore Create(IStorage storage, ImageFiles files, ImageRecord image)
    {
        var data = storage.Create(files.MetadataPath);
        IStorageFile? log = null;
        try
        {
            log = storage.Create(files.MetadataLogPath);
            var store = new MetadataStore(data, log, image.ImageId, readOnly: false, image);
            try
            {
                store._dataStream!.WritesAllowed = true;
                store._db.Pragma("CHECKPOINT", 0);   // persisted: LiteDB checkpoints only when we ask (at close, or a long log)
                store.Commit(new MetadataChanges { Image = image });
                store.TryCheckpoint();
                return store;
            }
            catch { store.Dispose(); throw; }
        }
        catch
        {
            log?.Dispose();
            data.Dispose();
            throw;
        }
    }

    // For Create: the database is new, so there is no image document to read yet.
    private MetadataStore(IStorageFile dataFile, IStorageFile logFile, Guid imageId, bool readOnly, ImageRecord image)
    {
        _dataFile = dataFile; _logFile = logFile; _path = dataFile.Path; _imageId = imageId; _readOnly = readOnly;
        (_db, _log) = OpenDatabase(creating: true);
        _dataStream!.WritesAllowed = false;
        Image = image;
    }

    /// <summary>Opens the metadata of the image whose data-file header carries imageId. Validates before it writes anything.</summary>
    public static MetadataStore Open(IStorage storage, ImageFiles files, Guid imageId, bool readOnly)
    {
        if (Directory.Exists(files.MetadataPath)) throw new ImageOpenException($"metadata file {files.MetadataPath} is a folder");
        if (!storage.Exists(files.MetadataPath)) throw new ImageOpenException($"metadata file {files.MetadataPath} is missing");
        CheckNoLegacyLog(storage, files);
        var access = readOnly ? StorageAccess.Read : StorageAccess.ReadWrite;
        var data = storage.Open(files.MetadataPath, access);
        IStorageFile? log = null;
        try
        {
            long length = data.Length;
            if (length == 0) throw new CorruptImageException($"metadata file {files.MetadataPath} is empty");
            if (length < PageSize)
                throw new CorruptImageException($"metadata file {files.MetadataPath} is damaged: {length} bytes, less than one 8 KiB page");
            Func<IStorageFile>? createLog = null;
            if (storage.Exists(files.MetadataLogPath)) log = storage.Open(files.MetadataLogPath, access);
            else
            {
                // No log yet (a format-1 image): created at the first write, after everything is validated.
                log = new EmptyStorageFile(files.MetadataLogPath);
                if (!readOnly)
                    createLog = () =>
                    {
                        var created = storage.Create(files.MetadataLogPath);
                        storage.SyncFolder(files.Folder);   // the log's name is durable before a commit relies on it
                        return created;
                    };
            }
            return new MetadataStore(data, log, imageId, readOnly, createLog);   // CHECKPOINT=0 was persisted at creation
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            log?.Dispose();
            data.Dispose();
            throw Damaged(files.MetadataPath, e);
        }
        catch
        {
            log?.Dispose();
            data.Dispose();
            throw;
        }
    }

    /// <summary>
    /// LiteDB reports a damaged file through many exception types (even ArgumentOutOfRange, or a ticks range
    /// error from a garbage date): its own messages are worth showing, the runtime's are not.
    /// </summary>
    private static CorruptImageException Damaged(string path, Exception e) => new(e switch
    {
        // A failed consistency check: LiteDB's text is an unformatted template ("…: {0}"), not for users.
        LiteException { ErrorCode: LiteException.INVALID_DATAFILE_STATE } => $"metadata file {path} is damaged (LiteDB consistency check failed)",
        LiteException lite when !lite.Message.Contains('{') => $"metadata file {path} is damaged: {lite.Message}",
        _ => $"metadata file {path} is damaged (not a readable LiteDB file)",
    });

    // Before the framed log (format v1 images), LiteDB kept its own log beside the data file.
    private static void CheckNoLegacyLog(IStorage storage, ImageFiles files)
    {
        if (!storage.Exists(files.LegacyMetadataLogPath)) return;
        using var legacy = storage.Open(files.LegacyMetadataLogPath, StorageAccess.Read);
        if (legacy.Length > 0)
            throw new ImageOpenException($"{files.LegacyMetadataLogPath} holds metadata an earlier cowdisk left after a crash; " +
                                         "open the image once with that version to replay it");
    }

    private (LiteDatabase, FramedLogStream) OpenDatabase(bool creating = false)
    {
        var log = FramedLogStream.Open(_logFile, _imageId, _logFile is EmptyStorageFile && _createLog is not null ? CreateLogFile : null);
        // LiteDB writes its data file only when it creates it and in checkpoints, and on a failed consistency
        // check (it marks the file invalid): that last write is refused, so a refused open changes nothing.
        _dataStream = new StorageStream(_dataFile, PageSize) { WritesAllowed = creating };
        var engine = new LiteEngine(new LiteDB.Engine.EngineSettings
        {
            DataStream = _dataStream,
            LogStream = log,
            ReadOnly = _readOnly,
            Upgrade = false,
        });
        return (new LiteDatabase(engine, disposeOnClose: true), log);
    }

    private IStorageFile CreateLogFile() => _logFile = _createLog!();

    private ImageRecord ReadImage()
    {
        try
        {
            var doc = _db.GetCollection(ImageCollection).FindById(ImageDocId)
                      ?? throw new CorruptImageException($"metadata file {_path} has no image record");
            return FromDocument(doc);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            try { _db.Dispose(); } catch (Exception) { }
            if (e is BlockDeviceException) throw;
            throw Damaged(_path, e);
        }
    }

    /// <summary>Loads every chunk's extents into the table; returns the number of extents.</summary>
    public long LoadMappings(MappingTable table)
    {
        long extents = 0;
        try
        {
            foreach (var doc in _db.GetCollection(ChunkCollection).FindAll())
            {
                long chunk = doc["_id"].AsInt64;
                if (chunk < 0 || chunk >= table.ChunkCount)
                    throw new CorruptImageException($"map chunk {chunk} lies outside the disk");
                extents += ExtentCodec.Decode(table, chunk, doc["x"].AsBinary);
            }
            // Then the journal, oldest first: each entry is the runs one commit changed after the chunks were written.
            var journal = new JournalState();
            foreach (var doc in _db.GetCollection(JournalCollection).Query().OrderBy("_id").ToEnumerable())
            {
                long seq = doc["_id"].AsInt64;
                var packed = doc["x"].AsBinary ?? throw new CorruptImageException($"journal entry {seq} has no records");
                journal.Unfolded.UnionWith(JournalCodec.Apply(table, seq, packed));
                journal.Entries++;
                journal.Bytes += packed.Length;
                journal.NextSequence = Math.Max(journal.NextSequence, seq + 1);
            }
            Journal = journal;
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            throw Damaged(_path, e);
        }
        return extents;
    }

    /// <summary>The mapping journal as found at open (after <see cref="LoadMappings"/>).</summary>
    public JournalState Journal { get; private set; } = new();

    /// <summary>Loads the epoch tree, the snapshots and the dead extents (images without snapshots have none stored).</summary>
    public History LoadHistory(MappingTable table)
    {
        try
        {
            var tree = LoadTree(out bool stored);
            var history = new History(table, tree);
            foreach (var doc in _db.GetCollection(DeadCollection).FindAll())
            {
                long chunk = doc["_id"].AsInt64;
                if (chunk < 0 || History.PageStart(chunk) >= table.BlockCount)
                    throw new CorruptImageException($"dead-extent page {chunk} lies outside the disk");
                var packed = doc["x"].AsBinary;
                if (packed is null || packed.Length % DeadRecord.Size != 0)
                    throw new CorruptImageException($"dead-extent page {chunk} is not a whole number of records");
                for (int r = 0; r < packed.Length / DeadRecord.Size; r++)
                {
                    DeadRecord rec;
                    try { rec = DeadRecord.Read(packed.AsSpan(r * DeadRecord.Size)); }
                    catch (FormatException e) { throw new CorruptImageException($"dead-extent page {chunk}: {e.Message}"); }
                    if (rec.FirstBlockInChunk + rec.BlockCount > History.PageBlocks)
                        throw new CorruptImageException($"dead-extent page {chunk}: run {rec.FirstBlockInChunk}+{rec.BlockCount} leaves the page");
                    for (int i = 0; i < rec.BlockCount; i++)
                        history.Load(History.PageStart(chunk) + rec.FirstBlockInChunk + i, rec.Source,
                            rec.Source == MappingSource.Data ? rec.PhysicalCluster + i : 0, rec.Birth, rec.Death);
                }
            }
            foreach (var doc in _db.GetCollection(LayerCollection).FindAll())
            {
                long page = doc["_id"].AsInt64;
                if (page < 0 || History.PageStart(page) >= table.BlockCount)
                    throw new CorruptImageException($"layer page {page} lies outside the disk");
                var packed = doc["x"].AsBinary;
                if (packed is null || packed.Length % LayerRecord.Size != 0)
                    throw new CorruptImageException($"layer page {page} is not a whole number of records");
                for (int r = 0; r < packed.Length / LayerRecord.Size; r++)
                {
                    LayerRecord rec;
                    try { rec = LayerRecord.Read(packed.AsSpan(r * LayerRecord.Size)); }
                    catch (FormatException e) { throw new CorruptImageException($"layer page {page}: {e.Message}"); }
                    long block = History.PageStart(page) + rec.BlockInPage;
                    if (rec.BlockInPage >= History.PageBlocks || block >= table.BlockCount)
                        throw new CorruptImageException($"layer page {page}: block {rec.BlockInPage} leaves the page or the disk");
                    history.Layers.Load(block, rec);
                }
            }
            history.Layers.DirtyPages.Clear();   // loaded, not changed: nothing to write back
            history.Validate();
            if (!stored) tree.MarkAllNodesNew();   // stored with the first commit that changes the tree
            else tree.TakeChanges();
            return history;
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            throw Damaged(_path, e);
        }
    }

    /// <summary>
    /// The epoch tree and the snapshots alone (no mappings): enough to freeze a new snapshot of a closed image,
    /// which changes no mapping. Changes made to it go out with <see cref="Commit(MetadataChanges)"/>.
    /// </summary>
    public EpochTree LoadTree(out bool stored)
    {
        try
        {
            var nodes = _db.GetCollection(EpochCollection).FindAll()
                .Select(d => ((uint)CheckedEpoch(d["_id"].AsInt64), d["parent"].AsInt64)).ToList();
            var snapshots = _db.GetCollection(SnapshotCollection).FindAll().Select(FromSnapshotDocument).ToList();
            stored = nodes.Count > 0;
            var tree = EpochTree.Load(Image.Epoch, Image.NextEpoch, nodes, snapshots);
            foreach (var doc in _db.GetCollection(CloneCollection).FindAll())
            {
                if (!Guid.TryParse(doc["_id"].AsString, out var id) || doc["path"].AsString is not { } clonePath)
                    throw new CorruptImageException("clone record is malformed");
                string? relative = doc.TryGetValue("relativePath", out var rel) && !rel.IsNull ? rel.AsString : null;
                tree.AddClone(new CloneRef(id, clonePath, (uint)CheckedEpoch(doc["epoch"].AsInt64), relative), stored: true);
            }
            return tree;
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            throw Damaged(_path, e);
        }
    }

    private static long CheckedEpoch(long e) =>
        e is < 0 or > MappingEntry.MaxEpoch ? throw new CorruptImageException($"epoch {e} is out of range") : e;

    private static BsonDocument ToDocument(SnapshotInfo s) => new()
    {
        ["_id"] = s.Id,
        ["name"] = s.Name,
        ["epoch"] = (long)s.Epoch,
        ["created"] = s.CreatedUtc,
    };

    private static SnapshotInfo FromSnapshotDocument(BsonDocument d)
    {
        try
        {
            string name = d["name"].AsString ?? throw new FormatException("no name");
            if (SnapshotInfo.InvalidStored(name) is { } why) throw new FormatException(why);   // the rules of every build that wrote one
            return new SnapshotInfo(d["_id"].AsInt32, name, (uint)CheckedEpoch(d["epoch"].AsInt64),
                DateTime.SpecifyKind(d["created"].AsDateTime.ToUniversalTime(), DateTimeKind.Utc));
        }
        catch (Exception e) when (e is FormatException or InvalidCastException or ArgumentException or NullReferenceException)
        {
            throw new CorruptImageException($"snapshot record is malformed: {e.Message}");
        }
    }

    /// <summary>
    /// One transaction: replaces the given chunks (null = no mappings left) and optionally the image document,
    /// then makes the log durable. On failure the durable state is the previous commit's and the caller may
    /// retry; the exception carries the errno (ENOSPC, EIO).
    /// </summary>
    public void Commit(IReadOnlyCollection<(long Chunk, byte[]? Extents)> chunks, ImageRecord? image = null) =>
        Commit(new MetadataChanges { Chunks = chunks.ToList(), Image = image });

    /// <summary>
    /// One transaction: every change in the batch, then the log made durable. On failure the durable state is
    /// the previous commit's and the caller may retry; the exception carries the errno (ENOSPC, EIO).
    /// </summary>
    public void Commit(MetadataChanges changes)
    {
        var image = changes.Image;
        if (_readOnly) throw new InvalidOperationException("metadata is open read-only");
        if (Broken) throw new StorageException($"metadata of {_path} is unusable after an earlier failure; reopen the image", Native.Errno.EIO);
        CutTail();
        RenewReserve();   // a commit may use the reserve; new allocations stop while it cannot be renewed
        try
        {
            var col = _db.GetCollection(ChunkCollection);
            _db.BeginTrans();
            foreach (var (chunk, extents) in changes.Chunks)
            {
                if (extents is null) col.Delete(chunk);
                else col.Upsert(new BsonDocument { ["_id"] = chunk, ["x"] = extents });
            }
            var journal = _db.GetCollection(JournalCollection);
            if (changes.FoldJournal) journal.DeleteAll();
            if (changes.Journal is { } entry) journal.Insert(new BsonDocument { ["_id"] = entry.Sequence, ["x"] = entry.Records });
            var dead = _db.GetCollection(DeadCollection);
            foreach (var (chunk, rows) in changes.Dead)
            {
                if (rows is null) dead.Delete(chunk);
                else dead.Upsert(new BsonDocument { ["_id"] = chunk, ["x"] = rows });
            }
            var layers = _db.GetCollection(LayerCollection);
            foreach (var (page, rows) in changes.Layers)
            {
                if (rows is null) layers.Delete(page);
                else layers.Upsert(new BsonDocument { ["_id"] = page, ["x"] = rows });
            }
            var epochs = _db.GetCollection(EpochCollection);
            foreach (uint e in changes.EpochsRemoved) epochs.Delete((long)e);
            foreach (var (e, parent) in changes.EpochsAdded)
                epochs.Upsert(new BsonDocument { ["_id"] = (long)e, ["parent"] = parent is { } p ? (long)p : -1L });
            var snaps = _db.GetCollection(SnapshotCollection);
            foreach (var snap in changes.SnapshotsRemoved) snaps.Delete(snap.Id);
            foreach (var snap in changes.SnapshotsAdded) snaps.Upsert(ToDocument(snap));
            var clones = _db.GetCollection(CloneCollection);
            foreach (var c in changes.ClonesRemoved) clones.Delete(c.Id.ToString());
            foreach (var c in changes.ClonesAdded)
                clones.Upsert(new BsonDocument
                {
                    ["_id"] = c.Id.ToString(), ["path"] = c.Path, ["epoch"] = (long)c.Epoch,
                    ["relativePath"] = c.RelativePath is null ? BsonValue.Null : c.RelativePath,
                });
            if (image is not null) _db.GetCollection(ImageCollection).Upsert(ToDocument(image));
            _db.Commit();
            _log.WriteUnwritten();   // a frame LiteDB could not be told about failing (ENOSPC) fails the commit here
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A write failed (ENOSPC): nothing is lost behind our back, so reloading the durable state and
            // committing again later is safe.
            var failure = StorageException.From($"metadata commit to {_path} failed", e);
            // Close the transaction on this thread: one left open is finalized later by LiteDB, which throws
            // on the finalizer thread and takes the process down.
            try { _db.Rollback(); } catch (Exception) { }
            Reload();
            throw failure;
        }
        try { _log.Flush(); }   // barrier: the commit's frames are durable before anyone relies on it
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // After a failed fsync the kernel may have dropped pages it still shows us: no later commit may
            // build on this log. The image must be reopened (recovery starts from what is durable).
            Broken = true;
            throw StorageException.From($"metadata commit to {_path} failed", e);
        }
        if (image is not null) Image = image;
        _sessionStarted = true;
        if (_log.Length > CheckpointLogBytes) TryCheckpoint();
    }

    /// <summary>Drops an unfinished commit found at open, just before the first write of this session.</summary>
    private void CutTail() => _log.CutTail();

    /// <summary>
    /// After a failed commit LiteDB's state (and, after an I/O error, LiteDB itself) cannot be trusted; reopening
    /// from storage gives exactly the durable state: the failed commit's frames are unconfirmed or cut.
    /// </summary>
    private void Reload()
    {
        try { (_db, _log) = Reopen(); }
        catch (Exception) { Broken = true; }
    }

    private (LiteDatabase, FramedLogStream) Reopen()
    {
        try { _db.Dispose(); } catch (Exception) { }
        var opened = OpenDatabase();
        opened.Item2.CutTail();
        return opened;
    }

    // LiteDB's checkpoint flushes the data file (our barrier) before it empties the log.
    private void TryCheckpoint()
    {
        _dataStream!.WritesAllowed = true;
        try { _db.Checkpoint(); }
        catch (Exception e) when (e is not OutOfMemoryException) { Reload(); }
        finally { if (_dataStream is not null) _dataStream.WritesAllowed = false; }
    }

    /// <summary>Checkpoints (writers whose session committed), then closes. A refused open closes without writing.</summary>
    public void Dispose()
    {
        if (!_readOnly && !Broken && _sessionStarted) TryCheckpoint();
        try { _db.Dispose(); } catch (Exception) when (Broken) { }
        _logFile.Dispose();
        _dataFile.Dispose();
    }

    private static BsonDocument ToDocument(ImageRecord r) => new()
    {
        ["_id"] = ImageDocId,
        ["imageId"] = r.ImageId.ToString(),
        ["clusterSize"] = r.ClusterSize,
        ["virtualSize"] = r.VirtualSize,
        ["backingFile"] = r.BackingFile is null ? BsonValue.Null : r.BackingFile,
        ["backingFormat"] = r.BackingFormat is null ? BsonValue.Null : r.BackingFormat,
        ["backingImageId"] = r.BackingImageId is { } bid ? bid.ToString() : BsonValue.Null,
        ["backingEpoch"] = r.BackingEpoch is { } be ? be : BsonValue.Null,
        ["clean"] = r.Clean,
        ["epoch"] = (long)r.Epoch,
        ["nextEpoch"] = (long)r.NextEpoch,
        ["created"] = r.CreatedUtc,
        ["dataDevice"] = r.DataDevice is null ? BsonValue.Null : r.DataDevice,
    };

    private static ImageRecord FromDocument(BsonDocument d)
    {
        try
        {
            return new ImageRecord
            {
                ImageId = Guid.Parse(d["imageId"].AsString),
                ClusterSize = d["clusterSize"].AsInt32,
                VirtualSize = d["virtualSize"].AsInt64,
                BackingFile = d["backingFile"].IsNull ? null : d["backingFile"].AsString,
                BackingFormat = d["backingFormat"].IsNull ? null : d["backingFormat"].AsString,
                BackingImageId = d.TryGetValue("backingImageId", out var bid) && !bid.IsNull ? Guid.Parse(bid.AsString) : null,
                BackingEpoch = d.TryGetValue("backingEpoch", out var be) && !be.IsNull ? be.AsInt64 : null,
                Clean = d["clean"].AsBoolean,
                Epoch = (uint)CheckedEpoch(d["epoch"].AsInt64),
                // Up to MaxEpoch + 1: the image has handed out every epoch (and refuses more snapshots).
                NextEpoch = d.TryGetValue("nextEpoch", out var next) && !next.IsNull
                    ? (next.AsInt64 is >= 0 and <= MappingEntry.MaxEpoch + 1L ? (uint)next.AsInt64 : throw new CorruptImageException($"next epoch {next.AsInt64} is out of range"))
                    : 0,
                CreatedUtc = d["created"].AsDateTime,
                DataDevice = d.TryGetValue("dataDevice", out var device) && !device.IsNull ? device.AsString : null,
            };
        }
        catch (Exception e) when (e is FormatException or InvalidCastException or ArgumentException or NullReferenceException)
        {
            throw new CorruptImageException($"image record is malformed: {e.Message}");
        }
    }
}
