using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Native;
using LiteDB;

namespace CowDisk.Engine.Metadata;

/// <summary>
/// The durable half of the metadata, in LiteDB: one image document and one document per map chunk holding
/// that chunk's extents packed (see docs/FORMAT.md). Never on the I/O path: the responder loads everything
/// at open and writes here only by group commit. LiteDB 5.0.21 does not fsync its log on commit, so every
/// commit here ends with our own fsync of the log file.
/// </summary>
internal sealed class MetadataStore : IDisposable
{
    private const string ImageCollection = "image";
    private const string ChunkCollection = "chunks";
    private const int ImageDocId = 1;

    private readonly LiteDatabase _db;
    private readonly string _path;
    private readonly bool _readOnly;
    private bool _logNameDurable;
    /// <summary>Past this the log is folded into the data file, so long sessions do not grow it without end.</summary>
    private const long CheckpointLogBytes = 64L << 20;

    public ImageRecord Image { get; private set; }

    private MetadataStore(LiteDatabase db, string path, bool readOnly, ImageRecord image)
    {
        _db = db; _path = path; _readOnly = readOnly; Image = image;
    }

    /// <summary>LiteDB's write-ahead log next to a data file: "x.meta.db" → "x.meta-log.db".</summary>
    public static string LogPathFor(string metaPath) =>
        Path.Combine(Path.GetDirectoryName(metaPath) ?? ".",
            Path.GetFileNameWithoutExtension(metaPath) + "-log" + Path.GetExtension(metaPath));

    public static MetadataStore Create(string path, ImageRecord image)
    {
        if (File.Exists(path)) throw new IOException($"{path} already exists");
        var db = new LiteDatabase(ConnectionFor(path, readOnly: false));
        var store = new MetadataStore(db, path, false, image);
        try
        {
            db.Pragma("CHECKPOINT", 0);   // checkpoints only at close (LiteDB's own checkpoint fsyncs before truncating the log)
            store.CommitInternal(Array.Empty<(long, byte[]?)>(), image);
            db.Checkpoint();
            return store;
        }
        catch { store.Dispose(); throw; }
    }

    public static MetadataStore Open(string path, bool readOnly)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"metadata file {path} is missing", path);
        LiteDatabase db;
        try { db = new LiteDatabase(ConnectionFor(path, readOnly)); }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            // LiteDB reports a damaged file through many exception types (even ArgumentOutOfRange).
            throw new CorruptImageException($"metadata file {path} is unreadable: {e.Message}");
        }
        try
        {
            if (!readOnly) db.Pragma("CHECKPOINT", 0);
            var doc = db.GetCollection(ImageCollection).FindById(ImageDocId)
                      ?? throw new CorruptImageException($"metadata file {path} has no image record");
            return new MetadataStore(db, path, readOnly, FromDocument(doc));
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            db.Dispose();
            throw new CorruptImageException($"metadata file {path} is unreadable: {e.Message}");
        }
        catch { db.Dispose(); throw; }
    }

    private static ConnectionString ConnectionFor(string path, bool readOnly) => new()
    {
        Filename = path,
        Connection = ConnectionType.Direct,
        ReadOnly = readOnly,
        Upgrade = false,
    };

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
        }
        catch (Exception e) when (e is not (BlockDeviceException or OutOfMemoryException))
        {
            throw new CorruptImageException($"metadata file {_path} is unreadable: {e.Message}");
        }
        return extents;
    }

    /// <summary>
    /// One transaction: replaces the given chunks (null = no mappings left) and optionally the image document,
    /// then fsyncs LiteDB's log so the commit survives power loss, not only a crash of this process.
    /// </summary>
    public void Commit(IReadOnlyCollection<(long Chunk, byte[]? Extents)> chunks, ImageRecord? image = null) =>
        CommitInternal(chunks, image);

    private void CommitInternal(IReadOnlyCollection<(long Chunk, byte[]? Extents)> chunks, ImageRecord? image)
    {
        if (_readOnly) throw new InvalidOperationException("metadata is open read-only");
        var col = _db.GetCollection(ChunkCollection);
        _db.BeginTrans();
        try
        {
            foreach (var (chunk, extents) in chunks)
            {
                if (extents is null) col.Delete(chunk);
                else col.Upsert(new BsonDocument { ["_id"] = chunk, ["x"] = extents });
            }
            if (image is not null) _db.GetCollection(ImageCollection).Upsert(ToDocument(image));
            _db.Commit();
        }
        catch (LiteException e)
        {
            _db.Rollback();
            throw new BlockDeviceException($"metadata commit failed: {e.Message}", e);
        }
        if (image is not null) Image = image;
        SyncLog();   // the commit is in the log only; make it durable before anyone relies on it
    }

    private void SyncLog()
    {
        string log = LogPathFor(_path);
        if (!File.Exists(log)) return;
        long length;
        using (var handle = File.OpenHandle(log, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
        {
            Libc.FSync(handle);
            length = RandomAccess.GetLength(handle);
        }
        if (!_logNameDurable)
        {
            Libc.FSyncDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);   // LiteDB created the log: make its name durable
            _logNameDurable = true;
        }
        // LiteDB's own checkpoint fsyncs the data file before it empties the log, so it is safe mid-session.
        if (length > CheckpointLogBytes) _db.Checkpoint();
    }

    public void Dispose()
    {
        if (!_readOnly)
        {
            try { _db.Checkpoint(); } catch (LiteException) { }   // fsyncs the data file before it empties the log
        }
        _db.Dispose();
        if (!_readOnly) Libc.FSyncDirectory(Path.GetDirectoryName(Path.GetFullPath(_path))!);   // the log file's removal
    }

    private static BsonDocument ToDocument(ImageRecord r) => new()
    {
        ["_id"] = ImageDocId,
        ["imageId"] = r.ImageId.ToString(),
        ["clusterSize"] = r.ClusterSize,
        ["virtualSize"] = r.VirtualSize,
        ["backingFile"] = r.BackingFile is null ? BsonValue.Null : r.BackingFile,
        ["backingFormat"] = r.BackingFormat is null ? BsonValue.Null : r.BackingFormat,
        ["clean"] = r.Clean,
        ["epoch"] = (long)r.Epoch,
        ["created"] = r.CreatedUtc,
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
                Clean = d["clean"].AsBoolean,
                Epoch = (uint)d["epoch"].AsInt64,
                CreatedUtc = d["created"].AsDateTime,
            };
        }
        catch (Exception e) when (e is FormatException or InvalidCastException or ArgumentNullException or NullReferenceException)
        {
            throw new CorruptImageException($"image record is malformed: {e.Message}");
        }
    }
}
