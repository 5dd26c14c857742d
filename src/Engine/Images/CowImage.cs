using CowDisk.Engine.Allocation;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Native;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Snapshots;
using CowDisk.Engine.Ring;
using CowDisk.Engine.Target;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;
using CowDisk.Engine.Storage;

namespace CowDisk.Engine.Images;

/// <summary>
/// A cowdisk image opened as a block device: the data file and its LiteDB metadata, a responder and a target
/// joined by a ring, and (optionally) a read-only base it owns. Every I/O goes through the target.
/// </summary>
public sealed partial class CowImage : IBlockDevice
{
    private readonly IStorageFile _dataFile;
    private readonly ClusterAllocator _allocator;   // the responder's; read only at close, once it has stopped
    private readonly IStorageFile? _headerFile;   // with a data device: the image file, holding the header and the lock
    private readonly MetadataStore _store;
    private readonly IBlockDevice? _base;
    private readonly SharedRegion _region;
    private readonly Doorbell _responderBell = new(), _completionBell = new();
    private readonly MapResponder _responder;
    private readonly RingClient _ring;
    private readonly CowTarget _target;
    private readonly MappingTable _table;
    private readonly object _controlLock = new();
    private readonly History? _viewedHistory;   // a snapshot view: the whole image's history, for listing
    private bool _disposed;

    /// <summary>The snapshot this read-only view shows, or null for the live disk.</summary>
    public SnapshotInfo? Snapshot { get; }

    public ImageFiles Files { get; }
    public ClusterGeometry Geometry { get; }
    public bool ReadOnly { get; }
    public Guid ImageId { get; }
    /// <summary>
    /// The image was not closed cleanly last time. It needs no repair (free space is derived); a writable open
    /// gives back the host space of clusters written but never committed (<see cref="ReclaimHostSpace"/>).
    /// </summary>
    public bool WasUnclean { get; }
    public long ExtentsLoaded { get; }
    /// <summary>Free clusters whose host space this open gave back: what a crash left written but uncommitted.</summary>
    public long ReclaimedClusters { get; private init; }
    public IBlockDevice? Base => _base;
    public string? BackingFile => _store.Image.BackingFile;
    /// <summary>The block device holding the extents, or null when they are in the data file.</summary>
    public string? DataDevice => _store.Image.DataDevice;

    public long Size => Geometry.VirtualSize;

    public BlockDeviceCapabilities Capabilities => ReadOnly
        ? BlockDeviceCapabilities.ReadOnly
        : BlockDeviceCapabilities.Flush | BlockDeviceCapabilities.Fua | BlockDeviceCapabilities.Discard | BlockDeviceCapabilities.WriteZeroes;

    /// <summary>Map round trips through the ring since open.</summary>
    public long RingCalls => _ring.Calls;

    /// <summary>Group commits of mappings to LiteDB since open.</summary>
    public long MetadataCommits => _responder.Commits;

    /// <summary>Bytes of an unfinished commit (never acknowledged) found in the metadata log at open and dropped.</summary>
    public long RecoveredLogBytes => _store.RecoveredLogBytes;

    private CowImage(ImageFiles files, IStorageFile dataFile, IStorageFile? headerFile, ImageHeader header, MetadataStore store,
        IBlockDevice? baseDevice, bool readOnly, EngineSettings settings, MappingTable table, ClusterAllocator allocator,
        long extents, bool wasUnclean, History history, SnapshotInfo? snapshot, History? viewedHistory)
    {
        Snapshot = snapshot;
        _viewedHistory = viewedHistory;
        // Where it was made, or where it is now if it moved together with this image.
        history.CloneExists = clone => CloneIsThere(clone, files.Folder);
        if ((headerFile ?? dataFile) is HostStorageFile imageFile)
            history.ViewReaders = () => !SnapshotViewLock.NoReaders(imageFile.Handle);
        Files = files; _dataFile = dataFile; _headerFile = headerFile; _store = store; _base = baseDevice; ReadOnly = readOnly;
        _allocator = allocator;
        ImageId = header.ImageId;
        Geometry = new ClusterGeometry(header.ClusterSize, header.VirtualSize);
        WasUnclean = wasUnclean;
        _table = table;
        ExtentsLoaded = extents;

        _region = new SharedRegion(settings.RingSlots);
        _responder = new MapResponder(Geometry, _table, allocator, readOnly ? null : store, dataFile, baseDevice is not null,
            _region.RequestRing, _region.ResponseRing, _responderBell, _completionBell, settings.Responder, history);
        var cache = settings.MappingCache ? new MappingCache(Geometry.BlockCount) : null;
        _ring = new RingClient(_region.RequestRing, _region.ResponseRing, _responderBell, _completionBell, cache, settings.MaxInFlightMaps);
        _target = new CowTarget(Geometry, dataFile, baseDevice, _ring, cache, readOnly);
    }

    /// <summary>
    /// After a crash: clusters written but never committed, and clusters whose free was committed but not yet
    /// punched, are free in the allocator (derived from the mappings) yet still hold host space. Gives that
    /// space back, as `check --repair` would, so a crash leaves no leak behind once the image is reopened for
    /// writing. Free clusters are named by no committed mapping, so no data is touched. Returns how many.
    /// </summary>
    private static long ReclaimHostSpace(IStorageFile data, ClusterAllocator allocator, ClusterGeometry geometry)
    {
        if (data is not HostStorageFile host) return 0;   // only a host file tells data from holes (SEEK_DATA)
        int shift = geometry.ClusterShift;
        long punched = 0;
        foreach (var (offset, length) in host.DataRanges())
        {
            long c = Math.Max(ClusterGeometry.FirstDataCluster, offset >> shift);
            long end = (offset + length + geometry.ClusterSize - 1) >> shift;
            while (c < end)
            {
                if (allocator.IsUsed(c)) { c++; continue; }
                long run = c + 1;
                while (run < end && !allocator.IsUsed(run)) run++;
                if (data.PunchHole(c << shift, (run - c) << shift)) punched += run - c;
                c = run;
            }
        }
        // The holes durable, like check --repair's. Housekeeping only: a failure here must not refuse the open
        // (the holes may come back after another crash, and the next unclean open punches them again).
        if (punched > 0)
        {
            try { data.Flush(); }
            catch (StorageException) { }
        }
        return punched;
    }

    /// <summary>
    /// Cuts off free clusters past the highest one in use: what the responder's growth ahead of allocation
    /// reserved and no write used. At a clean close, and at a writable open for the tail a crash left.
    /// Housekeeping, like <see cref="ReclaimHostSpace"/>: a failure leaves the tail, whose clusters are then not fresh.
    /// </summary>
    private static void CutUnusedTail(IStorageFile data, ClusterAllocator allocator, ClusterGeometry geometry)
    {
        long keep = geometry.ClusterOffset(allocator.HighWater);
        if (data.Length <= keep) return;
        try
        {
            data.SetLength(keep);
            data.Flush();   // the cut durable before any write lands past it as a fresh (unfilled) cluster
            allocator.FileCut(allocator.HighWater);
        }
        catch (StorageException) { }   // the tail stays; its clusters are just not fresh
    }

    /// <summary>Free space is derived from the mappings: every cluster no mapping holds is free.</summary>
    private static ClusterAllocator BuildAllocator(MappingTable table, History history, ClusterGeometry geometry, long dataFileLength, bool device)
    {
        long fileClusters = geometry.ClustersIn(dataFileLength);
        // A device's clusters all exist (and hold old bytes, so none is fresh); only whole ones are usable.
        var allocator = device ? new ClusterAllocator(fileClusters, dataFileLength >> geometry.ClusterShift) : new ClusterAllocator(fileClusters);
        foreach (var (block, cluster) in table.DataMappings())
        {
            if (cluster >= fileClusters)
                throw new CorruptImageException($"block {block} maps to cluster {cluster}, past the end of the data file");
            if (!allocator.TryMarkUsed(cluster))
                throw new CorruptImageException($"physical cluster {cluster} is mapped by more than one block");
        }
        // Clusters only snapshots read are in use too; a dead extent the head reads again (after a revert) is the same mapping.
        foreach (var (key, cluster) in history.DeadClusters())
        {
            if (cluster >= fileClusters)
                throw new CorruptImageException($"a snapshot's block {key.Block} maps to cluster {cluster}, past the end of the data file");
            var live = table.GetMapping(key.Block);
            if (live.IsData && live.Epoch == key.Birth && live.PhysicalCluster == cluster) continue;
            if (!allocator.TryMarkUsed(cluster))
                throw new CorruptImageException($"physical cluster {cluster} is mapped by more than one block");
        }
        return allocator;
    }

    public static CowImage Create(string path, ImageCreateOptions options, EngineSettings? settings = null) =>
        Create(path, options, settings ?? new EngineSettings(), HostStorage.Instance);

    internal static CowImage Create(string path, ImageCreateOptions options, EngineSettings settings, IStorage storage)
    {
        settings.Validate();
        var files = ImageFiles.For(path);
        if (ImageRef.Parse(files.DataPath) is { Snapshot: { } ambiguous } named && File.Exists(named.Path))
            throw new ImageOpenException($"{files.DataPath} would be read as snapshot '{ambiguous}' of {named.Path}; choose a name without '@'");
        if (!ClusterGeometry.IsValidClusterSize((uint)options.ClusterSize))
            throw new ImageOpenException($"cluster size must be a power of two from 4K to 2M, not {options.ClusterSize}");
        if (!Directory.Exists(files.Folder)) throw new ImageOpenException($"folder {files.Folder} does not exist");
        if (Directory.Exists(files.DataPath)) throw new ImageOpenException($"{files.DataPath} is a folder");
        string? backingFormat = null;
        (Guid? Id, long? Epoch) backingIdentity = default;
        long size = options.Size;
        if (options.BackingPath is not null)
        {
            string backingFull = files.ResolveBacking(options.BackingPath);
            if (ImageRef.Parse(backingFull).Path == files.DataPath) throw new ImageOpenException("an image cannot be its own backing file");
            using var backing = BaseImage.OpenAs(backingFull, options.BackingFormat, depth: 1, new[] { files.DataPath });
            backingFormat = options.BackingFormat == BaseImage.RawFormat ? BaseImage.RawFormat : BaseImage.FormatName(backing);
            backingIdentity = BaseImage.IdentityOf(backing);
            if (size == 0) size = backing.Size;
        }
        if (size <= 0 || size > ClusterGeometry.MaxVirtualSize)
            throw new ImageOpenException(size == 0 ? "a size is needed (--size) when there is no backing image" : $"size {size} is out of range (1 byte to 64T)");

        string? dataDevice = DataDevicePath(options);
        IStorageFile? oldData = null, device = null, data = null;
        try
        {
            if (!options.Force)
            {
                foreach (var existing in new[] { files.DataPath, files.MetadataPath })
                    if (storage.Exists(existing)) throw new ImageOpenException($"{existing} already exists (use --force to replace it)");
            }
            else if (storage.Exists(files.DataPath))
            {
                // Replacing an image is writing it: refused while anyone has it open, like any second writer.
                oldData = storage.Open(files.DataPath, StorageAccess.ReadWrite);
                if (!oldData.TryLock(exclusive: true))
                    throw new ImageLockedException($"{files.DataPath} cannot be replaced: it is in use{LockHolder.Describe(files.DataPath)}");
                // A snapshot view served by an earlier writer still reads the old image (and its data device).
                if (oldData is HostStorageFile held && !SnapshotViewLock.NoReaders(held.Handle))
                    throw new ImageLockedException($"{files.DataPath} cannot be replaced: a snapshot view of it is open (an attached snapshot or a clone in use)");
                if (LiveCloneOf(storage, files, oldData) is { } clone)
                    throw new ImageOpenException($"{files.DataPath} cannot be replaced: clone {clone} is made from one of its snapshots (delete the clone first)");
            }
            // Everything that can refuse is checked before anything is deleted.
            if (dataDevice is not null) device = ClaimDataDevice(storage, dataDevice, options);
            // Without the data file and metadata, leftover logs belong to no image: replace them too.
            foreach (var f in options.Force ? files.All : new[] { files.MetadataLogPath, files.LegacyMetadataLogPath })
                storage.Delete(f);
            data = CreateFiles(storage, files, options, size, backingFormat, backingIdentity, dataDevice, device);
        }
        catch (StorageException e)
        {
            throw new ImageOpenException($"cannot create {files.DataPath}: {e.Message}");
        }
        finally
        {
            oldData?.Dispose();
            device?.Dispose();
        }
        // The new data file stays open and locked from its creation into the open: nobody else can get in between.
        return Open(path, new ImageOpenOptions { Settings = settings, Storage = storage }, depth: 0, Array.Empty<string>(), data);
    }

    /// <summary>A clone still made from a snapshot of the image being replaced, or null (also when its metadata cannot be read).</summary>
    private static string? LiveCloneOf(IStorage storage, ImageFiles files, IStorageFile oldData)
    {
        try
        {
            var header = ReadHeader(files, oldData);
            using var store = MetadataStore.Open(storage, files, header.ImageId, readOnly: true);
            return store.LoadTree(out _).Clones.FirstOrDefault(c => CloneIsThere(c, files.Folder))?.Path;
        }
        catch (Exception e) when (e is BlockDeviceException or IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>A registered clone still exists: where it was made, or moved together with this image (its folder).</summary>
    private static bool CloneIsThere(CloneRef clone, string imageFolder) =>
        ImageHeaderProbe.IdOf(clone.Path) == clone.Id ||
        (clone.RelativePath is { } relative && ImageHeaderProbe.IdOf(Path.Combine(imageFolder, relative)) == clone.Id);

    private static string? DataDevicePath(ImageCreateOptions options) =>
        options.DataDevice is null ? null : Path.GetFullPath(options.DataDevice);

    /// <summary>Creates the files of a new image; returns its data file, open and locked exclusively.</summary>
    private static IStorageFile CreateFiles(IStorage storage, ImageFiles files, ImageCreateOptions options, long size, string? backingFormat,
        (Guid? Id, long? Epoch) backingIdentity, string? dataDevice, IStorageFile? device)
    {
        var header = new ImageHeader(ImageHeader.CurrentVersion, options.ImageId ?? Guid.NewGuid(), options.ClusterSize, size)
        {
            Flags = dataDevice is null ? ImageHeaderFlags.None : ImageHeaderFlags.ExternalData,
        };
        var created = new List<string>();
        IStorageFile? data = null;
        try
        {
            if (device is not null) WriteDeviceHeader(device, header);
            data = storage.Create(files.DataPath);
            created.Add(files.DataPath);
            if (!data.TryLock(exclusive: true))
                throw new ImageLockedException($"{files.DataPath} was opened by another process while being created{LockHolder.Describe(files.DataPath)}");
            var page = new byte[ImageHeader.ReservedBytes];
            header.Write(page);
            data.Write(0, page);
            data.Flush();   // header durable before the metadata that names it
            var record = new ImageRecord
            {
                ImageId = header.ImageId, ClusterSize = header.ClusterSize, VirtualSize = size,
                BackingFile = options.BackingPath, BackingFormat = backingFormat, Clean = true, CreatedUtc = DateTime.UtcNow,
                BackingImageId = backingIdentity.Id, BackingEpoch = backingIdentity.Epoch,
                DataDevice = dataDevice,
            };
            created.Add(files.MetadataPath);
            created.Add(files.MetadataLogPath);
            MetadataStore.Create(storage, files, record).Dispose();
            storage.SyncFolder(files.Folder);   // all three names durable
            return data;
        }
        catch
        {
            data?.Dispose();
            foreach (var f in created)
            {
                try { storage.Delete(f); } catch (StorageException) { }
            }
            throw;
        }
    }

    /// <summary>
    /// Opens a block device for extents exclusively and checks it may be used: big enough, and not holding
    /// anything (another image's extents, a file system, a partition table) unless --force says to overwrite it.
    /// </summary>
    private static IStorageFile ClaimDataDevice(IStorage storage, string path, ImageCreateOptions options)
    {
        var dev = storage.OpenDevice(path, StorageAccess.ReadWrite);
        try
        {
            if (!dev.TryLock(exclusive: true))
                throw new ImageLockedException($"data device {path} is in use{LockHolder.Describe(path)}");
            if (dev.Length < 2L * options.ClusterSize)
                throw new ImageOpenException($"data device {path} has {dev.Length} bytes, less than two clusters of {options.ClusterSize}");
            var head = new byte[64 * 1024];
            dev.Read(0, head);
            if (!options.Force && TryReadHeader(head, out var other))
                throw new ImageOpenException($"data device {path} holds the extents of image {other.ImageId} (use --force to reuse it)");
            if (!options.Force && head.AsSpan().IndexOfAnyExcept((byte)0) >= 0)
                throw new ImageOpenException($"data device {path} is not blank (a file system or partition table?); use --force to overwrite it");
            return dev;
        }
        catch { dev.Dispose(); throw; }
    }

    /// <summary>The device's cluster 0 gets the image's header, so a swapped device is noticed.</summary>
    private static void WriteDeviceHeader(IStorageFile device, ImageHeader header)
    {
        var page = new byte[ImageHeader.ReservedBytes];
        header.Write(page);
        device.Write(0, page);
        device.Flush();   // the device's header durable before the image that names it
    }

    private static bool TryReadHeader(ReadOnlySpan<byte> bytes, out ImageHeader header)
    {
        try { header = ImageHeader.Read(bytes); return true; }
        catch (FormatException) { header = default; return false; }
    }

    public static CowImage Open(string path, ImageOpenOptions options) => Open(path, options, depth: 0, Array.Empty<string>());

    /// <param name="chain">The images above this one in a backing chain, to report a loop as a loop.</param>
    /// <param name="created">A data file just created, open and locked by the caller; the open takes it over.</param>
    internal static CowImage Open(string path, ImageOpenOptions options, int depth, IReadOnlyList<string> chain, IStorageFile? created = null)
    {
        options.Settings.Validate();
        var storage = options.Storage ?? HostStorage.Instance;
        var files = ImageFiles.For(path);
        IStorageFile data;
        if (created is not null) data = created;
        else
        {
            if (Directory.Exists(files.DataPath)) throw new ImageOpenException($"{files.DataPath} is a folder, not an image");
            if (!storage.Exists(files.DataPath)) throw new ImageOpenException($"image {files.DataPath} does not exist");
            try { data = storage.Open(files.DataPath, options.ReadOnly ? StorageAccess.Read : StorageAccess.ReadWrite); }
            catch (StorageException e) { throw new ImageOpenException(e.Message); }
        }
        // Engine:DirectIo: the data file bypasses the host page cache (the image's own reads and writes only).
        if (options.Settings.DirectIo && data is HostStorageFile host)
        {
            try { host.EnableDirectIo(); }
            catch (StorageException e)
            {
                data.Dispose();
                throw new ImageOpenException(e.Message);
            }
        }
        MetadataStore? store = null;
        IBlockDevice? baseDevice = null;
        IStorageFile? device = null;
        try
        {
            if (created is null && !data.TryLock(exclusive: !options.ReadOnly))
                throw new ImageLockedException(options.ReadOnly
                    ? $"image {files.DataPath} is open for writing by another process{LockHolder.Describe(files.DataPath)}"
                    : $"image {files.DataPath} cannot be opened for writing: it is in use{LockHolder.Describe(files.DataPath)}");
            var header = ReadHeader(files, data);
            store = MetadataStore.Open(storage, files, header.ImageId, options.ReadOnly);
            var rec = store.Image;
            if (rec.ImageId != header.ImageId)
                throw new CorruptImageException($"metadata file {files.MetadataPath} belongs to image {rec.ImageId}, not to {header.ImageId}");
            if (rec.ClusterSize != header.ClusterSize || rec.VirtualSize != header.VirtualSize)
                throw new CorruptImageException($"metadata and header of {files.DataPath} disagree on geometry");
            if (rec.BackingFile is not null)
            {
                string backing = files.ResolveBacking(rec.BackingFile);
                var below = chain.Append(files.DataPath).ToArray();
                var backingRef = ImageRef.Parse(backing);
                // By the file a link names too: a backing name that is a symlink to an image of the chain is a loop.
                string backingTarget = ImageFiles.For(backingRef.Path).DataPath;
                if (below.Contains(backingRef.Path) || below.Contains(backingTarget))
                    throw new ImageOpenException($"backing chain loops: {string.Join(" -> ", below.Append(backingRef.Path == backingTarget ? backingTarget : $"{backingRef.Path} ({backingTarget})"))}");
                if (Directory.Exists(backingRef.Path)) throw new ImageOpenException($"backing file {backingRef.Path} of {files.DataPath} is a folder, not an image");
                if (!File.Exists(backingRef.Path)) throw new ImageOpenException($"backing file {backingRef.Path} of {files.DataPath} does not exist");
                // Opened as the format recorded when this image was made, never re-guessed: a raw base whose
                // guest wrote a qcow2 or cowdisk header must not turn into that format (and follow its backing).
                baseDevice = BaseImage.OpenAs(backing, rec.BackingFormat, depth + 1, below, files.DataPath);
                // The base must still be the image (and snapshot) this one was made from, not another under its name.
                if (rec.BackingImageId is { } expectedId && BaseImage.IdentityOf(baseDevice) is var (id, epoch) &&
                    (id != expectedId || epoch != rec.BackingEpoch))
                    throw new CorruptImageException(
                        $"backing file {rec.BackingFile} of {files.DataPath} is not the one it was made from " +
                        (id != expectedId ? $"(image {id?.ToString() ?? "of another format"}, expected {expectedId})"
                                          : "(that snapshot was deleted and another made under its name)"));
            }
            if ((header.Flags & ImageHeaderFlags.ExternalData) != 0)
                device = OpenDataDevice(storage, files, header, rec, options.ReadOnly);
            else if (rec.DataDevice is not null)
                throw new CorruptImageException($"metadata of {files.DataPath} names data device {rec.DataDevice}, but its header does not");
            // Everything is validated before the first write: a refused open modifies nothing.
            var geometry = new ClusterGeometry(header.ClusterSize, header.VirtualSize);
            var table = new MappingTable(geometry.BlockCount);
            long extents = store.LoadMappings(table);
            var history = store.LoadHistory(table);
            history.ValidateLayers(geometry);
            var extentFile = device ?? data;
            var allocator = BuildAllocator(table, history, geometry, extentFile.Length, device is not null);
            bool wasUnclean = !rec.Clean;
            SnapshotInfo? snapshot = null;
            History? viewed = null;
            if (options.Snapshot is { } name)
            {
                if (!options.ReadOnly) throw new ImageOpenException($"snapshot {files.DataPath}@{name} is read-only");
                snapshot = history.Tree.Find(name) ?? throw new ImageOpenException($"{files.DataPath} has no snapshot named '{name}'");
                viewed = history;
                table = history.BuildView(snapshot.Epoch);
                history = new History(table, history.Tree, history.Layers);   // the view's layered blocks read as the snapshot saw them
            }
            if (!options.ReadOnly)
            {
                if (header.Version < ImageHeader.CurrentVersion) header = Upgrade(data, header);
                // Marked in use before any write; a crash leaves it unclean, which open reports.
                store.Commit(Array.Empty<(long, byte[]?)>(), rec with { Clean = false });
            }
            long reclaimed = !options.ReadOnly && wasUnclean && device is null ? ReclaimHostSpace(data, allocator, geometry) : 0;
            if (!options.ReadOnly && device is null) CutUnusedTail(data, allocator, geometry);
            return new CowImage(files, extentFile, device is null ? null : data, header, store, baseDevice, options.ReadOnly,
                options.Settings, table, allocator, extents, wasUnclean, history, snapshot, viewed) { ReclaimedClusters = reclaimed };
        }
        catch
        {
            device?.Dispose();
            baseDevice?.Dispose();
            store?.Dispose();
            data.Dispose();
            throw;
        }
    }

    private static IStorageFile OpenDataDevice(IStorage storage, ImageFiles files, ImageHeader header, ImageRecord rec, bool readOnly)
    {
        if (rec.DataDevice is null)
            throw new CorruptImageException($"{files.DataPath} keeps its extents on a data device, but its metadata names none");
        IStorageFile device;
        try { device = storage.OpenDevice(rec.DataDevice, readOnly ? StorageAccess.Read : StorageAccess.ReadWrite); }
        catch (StorageException e) { throw new ImageOpenException(e.Message); }
        try
        {
            if (!device.TryLock(exclusive: !readOnly))
                throw new ImageLockedException($"data device {rec.DataDevice} is in use{LockHolder.Describe(rec.DataDevice)}");
            var page = new byte[ImageHeader.Size];
            device.Read(0, page);
            if (!TryReadHeader(page, out var onDevice) || onDevice.ImageId != header.ImageId)
                throw new CorruptImageException($"data device {rec.DataDevice} does not hold the extents of {files.DataPath} (image {header.ImageId})");
            return device;
        }
        catch { device.Dispose(); throw; }
    }

    /// <summary>
    /// An older image takes the current version before its first write, so a build that knows only its old version
    /// refuses it instead of missing what it cannot read: mappings in the framed log (2), snapshots and the
    /// extents only they read, which an old build would free and overwrite (3), layered blocks, whose other
    /// subclusters an old build would read from the wrong cluster (4).
    /// </summary>
    private static ImageHeader Upgrade(IStorageFile data, ImageHeader header)
    {
        var upgraded = header with { Version = ImageHeader.CurrentVersion };
        var sector = new byte[512];   // the header is one sector: rewritten whole or not at all
        upgraded.Write(sector);
        data.Write(0, sector);
        data.Flush();   // the new version durable before the first frame an old build would not understand
        return upgraded;
    }

    private static ImageHeader ReadHeader(ImageFiles files, IStorageFile data)
    {
        var page = new byte[ImageHeader.Size];
        int n = data.Read(0, page);
        try { return ImageHeader.Read(page.AsSpan(0, n)); }
        catch (FormatException e) { throw new CorruptImageException($"{files.DataPath}: {e.Message}"); }
    }

    // ---- snapshots ----

    /// <summary>Freezes the disk as it is now (every write acknowledged before the call) under a name. O(1).</summary>
    public SnapshotInfo CreateSnapshot(string name)
    {
        if (SnapshotInfo.Invalid(name) is { } why) throw new ImageOpenException(why);
        return RunControl(ControlKind.CreateSnapshot, name);
    }

    /// <summary>
    /// Snapshot create for an image nobody has open: it changes no mapping (the head only moves to a new epoch), so
    /// only the epoch tree is read and one commit written. O(1) for the whole command, whatever the disk holds.
    /// </summary>
    public static SnapshotInfo CreateSnapshot(string path, string name, EngineSettings? settings = null)
    {
        if (SnapshotInfo.Invalid(name) is { } why) throw new ImageOpenException(why);
        var storage = HostStorage.Instance;
        var files = ImageFiles.For(path);
        if (Directory.Exists(files.DataPath)) throw new ImageOpenException($"{files.DataPath} is a folder, not an image");
        if (!storage.Exists(files.DataPath)) throw new ImageOpenException($"image {files.DataPath} does not exist");
        IStorageFile data;
        try { data = storage.Open(files.DataPath, StorageAccess.ReadWrite); }
        catch (StorageException e) { throw new ImageOpenException(e.Message); }
        using (data)
        {
            if (!data.TryLock(exclusive: true))
                throw new ImageLockedException($"image {files.DataPath} cannot be opened for writing: it is in use{LockHolder.Describe(files.DataPath)}");
            var header = ReadHeader(files, data);
            using var store = MetadataStore.Open(storage, files, header.ImageId, readOnly: false);
            if (store.Image.ImageId != header.ImageId)
                throw new CorruptImageException($"metadata file {files.MetadataPath} belongs to image {store.Image.ImageId}, not to {header.ImageId}");
            if (store.Image.ClusterSize != header.ClusterSize || store.Image.VirtualSize != header.VirtualSize)
                throw new CorruptImageException($"metadata and header of {files.DataPath} disagree on geometry");
            // The history is validated like any open (epochs, snapshots, clones, dead extents inside the disk and
            // the data file); the live mappings are not loaded: a snapshot changes none of them.
            var geometry = new ClusterGeometry(header.ClusterSize, header.VirtualSize);
            var history = store.LoadHistory(new MappingTable(geometry.BlockCount));
            bool onDevice = (header.Flags & ImageHeaderFlags.ExternalData) != 0;   // the device's size is checked at a full open
            long extentClusters = geometry.ClustersIn(data.Length);
            foreach (var (key, cluster) in history.DeadClusters())
                if (!onDevice && cluster >= extentClusters)
                    throw new CorruptImageException($"a snapshot's block {key.Block} maps to cluster {cluster}, past the end of the data file");
            var tree = history.Tree;
            if (tree.Find(name) is not null) throw new ImageOpenException($"a snapshot named '{name}' already exists");
            if (tree.Exhausted) throw new ImageOpenException(EpochTree.ExhaustedMessage);
            if (header.Version < ImageHeader.CurrentVersion) Upgrade(data, header);
            var snap = tree.Create(name, DateTime.UtcNow);
            var (added, removed, nodesAdded, nodesRemoved) = tree.TakeChanges();
            store.Commit(new MetadataChanges
            {
                SnapshotsAdded = added, SnapshotsRemoved = removed, EpochsAdded = nodesAdded, EpochsRemoved = nodesRemoved,
                Image = store.Image with { Epoch = tree.Head, NextEpoch = tree.NextEpoch },
            });
            return snap;
        }
    }

    /// <summary>Forgets a snapshot; the clusters only it read are freed (and reusable once that is durable).</summary>
    public SnapshotInfo DeleteSnapshot(string name) => RunControl(ControlKind.DeleteSnapshot, name);

    /// <summary>A snapshot's mappings as journal records over the whole disk, for a reader that cannot open the image (it is held).</summary>
    internal (byte[] Records, uint Epoch) ExportSnapshot(string name)
    {
        var op = Submit(new ControlOp { Kind = ControlKind.ExportView, Name = name }, $"exporting snapshot '{name}'");
        return (op.Export!, op.ExportEpoch);
    }

    /// <summary>check --repair: forgets dead extents no snapshot reads; returns the data clusters freed.</summary>
    internal long DropUnreadDeadExtents()
    {
        var op = Submit(new ControlOp { Kind = ControlKind.DropUnreadDeadExtents, Name = "" }, "repair");
        return op.Result!.ExclusiveBytes / Geometry.ClusterSize;
    }

    /// <summary>Records that an image is being made from a snapshot, so the snapshot is not deleted under it.</summary>
    internal SnapshotInfo RegisterClone(string snapshot, Guid cloneId, string clonePath) =>
        RunControl(ControlKind.AddClone, snapshot, new CloneRef(cloneId, clonePath, 0, Path.GetRelativePath(Files.Folder, clonePath)));

    /// <summary>
    /// A writable image that reads as the snapshot (its backing is IMAGE@SNAPSHOT and shares the snapshot's extents);
    /// the snapshot is registered first, so it cannot be deleted while the clone exists.
    /// </summary>
    /// <param name="register">Records the clone with the image's snapshot (an attachment holding the image does it); by default the image is opened for it.</param>
    public static CowImage CreateClone(string path, ImageRef from, ImageCreateOptions options, EngineSettings? settings = null,
        Action<string, Guid, string>? register = null)
    {
        settings ??= new EngineSettings();
        if (from.Snapshot is null) throw new ImageOpenException($"--from needs IMAGE@SNAPSHOT, not {from.Path}");
        var files = ImageFiles.For(path);
        string parent = ImageFiles.For(Path.GetFullPath(from.Path)).DataPath;
        if (parent == files.DataPath) throw new ImageOpenException("a clone cannot replace the image it is made from");
        if (!options.Force && File.Exists(files.DataPath)) throw new ImageOpenException($"{files.DataPath} already exists (use --force to replace it)");
        var id = Guid.NewGuid();
        if (register is not null) register(from.Snapshot, id, files.DataPath);
        else
        {
            using var source = Open(parent, new ImageOpenOptions { Settings = settings });
            source.RegisterClone(from.Snapshot, id, files.DataPath);
        }
        // Stored relative to the clone's folder when they share it, so the pair can move together.
        string relative = Path.GetRelativePath(files.Folder, parent);
        string backing = (relative.StartsWith("..", StringComparison.Ordinal) ? parent : relative) + "@" + from.Snapshot;
        return Create(path, options with { BackingPath = backing, ImageId = id }, settings);
    }

    /// <summary>
    /// Maps every unallocated block of a byte range to a cluster that reads as zeros, writing no data (like
    /// qemu-img's preallocation=metadata): later writes there overwrite in place. Not for images with a base.
    /// </summary>
    public void PreallocateMetadata(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size - length) throw new ImageOpenException($"range {offset}+{length} is outside the disk");
        if (length == 0) return;
        long first = offset >> Geometry.ClusterShift, end = (offset + length + Geometry.ClusterSize - 1) >> Geometry.ClusterShift;
        Submit(new ControlOp { Kind = ControlKind.Preallocate, Name = "", FirstBlock = first, BlockCount = end - first }, "preallocation");
    }

    /// <summary>Makes the disk read as the snapshot again; other snapshots stay.</summary>
    public SnapshotInfo RevertSnapshot(string name) => RunControl(ControlKind.RevertSnapshot, name);

    /// <summary>The snapshots, oldest first, with the bytes each alone holds.</summary>
    public IReadOnlyList<SnapshotInfo> ListSnapshots()
    {
        // A read-only responder never changes the history; a writer's is read on its own thread.
        if (_viewedHistory is { } viewed) return viewed.ListSnapshots(Geometry.ClusterSize);
        if (ReadOnly) return _responder.ListSnapshots();
        return Submit(new ControlOp { Kind = ControlKind.ListSnapshots, Name = "" }, "listing snapshots").List!;
    }

    private SnapshotInfo RunControl(ControlKind kind, string name, CloneRef? clone = null)
    {
        if (ReadOnly) throw new ImageOpenException(Snapshot is null ? $"image {Files.DataPath} is open read-only" : $"snapshot {Files.DataPath}@{Snapshot.Name} is read-only");
        return Submit(new ControlOp { Kind = kind, Name = name, Clone = clone }, "snapshot change").Result!;
    }

    /// <summary>
    /// Hands a control operation to the responder and waits until it is applied (and durable, for changes): a
    /// refusal is one line; a failure names the responder's fatal cause when it has one.
    /// </summary>
    private ControlOp Submit(ControlOp op, string what, bool changesMappings = true)
    {
        lock (_controlLock)
        {
            _responder.Enqueue(op);
            int result = _target.Control(invalidateCache: changesMappings);
            if (changesMappings) Interlocked.Increment(ref _generation);   // a snapshot op or revert changes what was changed since what
            if (op.Refused is not null) throw new ImageOpenException(op.Refused);
            if (result == 0) return op;
            var cause = _responder.Fatal;
            throw new BlockDeviceException($"{what} failed: {cause?.Message ?? Native.Errno.Describe(-result)}", cause, -result);
        }
    }

    public void Read(long offset, Span<byte> buffer) => _target.Read(offset, buffer);

    /// <summary>Starts writeback of the data file's dirty pages (a hint for long copies, not a barrier).</summary>
    public void StartWriteback() => _dataFile.StartWriteback();

    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None)
    {
        try { _target.Write(offset, buffer, flags); }
        finally { Interlocked.Increment(ref _generation); }   // after: an answer cached before this write lands is stale
    }

    public void Flush()
    {
        try { _target.Flush(); }
        catch (BlockDeviceException e) when (_responder.Fatal is { } fatal && e is not StorageException)
        {
            // Name the cause, keeping its errno (ENOSPC, EIO) for the frontends.
            throw new BlockDeviceException($"flush failed: {fatal.Message}", fatal, StorageException.ErrnoOf(fatal));
        }
    }

    public void Discard(long offset, long length)
    {
        try { _target.Zero(offset, length); }
        finally { Interlocked.Increment(ref _generation); }
    }

    public void WriteZeroes(long offset, long length) => Discard(offset, length);

    private long _generation;

    /// <summary>Moves on after every write, discard and snapshot operation: an answer about the mappings cached under one value is current while it stays.</summary>
    public long ContentGeneration => Interlocked.Read(ref _generation);

    /// <summary>Bytes of virtual disk mapped to data extents in this layer. Exact once I/O is quiescent.</summary>
    public long AllocatedBytes() => _table.DataMappings().LongCount() * Geometry.ClusterSize;

    /// <summary>Flushes, then checks the allocation invariants; throws CorruptImageException on a breach.</summary>
    public InvariantReport CheckInvariants()
    {
        if (!ReadOnly) Flush();
        return _responder.CheckInvariants(_dataFile.Length);
    }

    public ImageInfo GetInfo() => new()
    {
        Path = Files.DataPath,
        Format = BaseImage.CowDiskFormat,
        VirtualSize = Size,
        ClusterSize = Geometry.ClusterSize,
        AllocatedBytes = AllocatedBytes(),
        DiskBytes = Files.Existing().Sum(HostFile.AllocatedBytes),
        ImageId = ImageId,
        Clean = !WasUnclean,
        BackingFile = _store.Image.BackingFile,
        BackingFormat = _store.Image.BackingFormat,
        DataDevice = _store.Image.DataDevice,
        Files = Files.Existing(),
        Backing = _base is null ? null : BaseImage.Info(_base),
        Snapshot = Snapshot?.Name,
        Snapshots = ListSnapshots(),
    };

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Exception? failure = null;
        try { if (!ReadOnly && _responder.Fatal is null) _target.Flush(); }
        catch (Exception e) { failure = e; }
        _ring.Dispose();
        _responder.Dispose();
        if (!ReadOnly && failure is null && _responder.Fatal is null)
        {
            try
            {
                var fold = _responder.FinalFold();   // a closed image opens from its chunks alone
                fold.Image = _store.Image with { Clean = true };
                _store.Commit(fold);
            }
            catch (Exception e) { failure = e; }
            // The responder has stopped, so its allocator can be read here; a data device is never cut.
            if (failure is null && _headerFile is null) CutUnusedTail(_dataFile, _allocator, Geometry);
        }
        _store.Dispose();
        _region.Dispose();
        _responderBell.Dispose();
        _completionBell.Dispose();
        _dataFile.Dispose();
        _headerFile?.Dispose();
        _base?.Dispose();
        // A close after the engine failed is not clean: the image stays marked unclean and unflushed writes are lost.
        if (!ReadOnly && failure is null && _responder.Fatal is { } fatal) failure = fatal;
        if (failure is not null) throw new BlockDeviceException($"closing {Files.DataPath} failed: {failure.Message}", failure, StorageException.ErrnoOf(failure));
    }
}
