using System.Runtime.InteropServices;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Native;
using CowDisk.Engine.Storage;
using CowDisk.Format.Qcow2;

namespace CowDisk.Engine.Images.Qcow2;

/// <summary>
/// A qcow2 image (version 2 or 3) as a read-only block device: a base under a cowdisk overlay, a convert source,
/// what `info` describes. Guest offsets go through the L1 table (loaded at open, bounded) and L2 tables (read on
/// demand through a bounded LRU cache); contiguous data clusters are read with one pread; unallocated ranges come
/// from the backing device (zeros without one, or past its end); compressed clusters (zlib or zstd) are inflated
/// one cluster at a time. Everything the file says is checked before it is used: a broken file gives
/// <see cref="ImageOpenException"/> at open or <see cref="CorruptImageException"/> naming the offset, never a crash.
/// Concurrent reads are safe; once warm, a read allocates nothing (a zlib inflate allocates its stream object).
/// </summary>
public sealed class Qcow2Image : IBlockDevice
{
    private readonly IStorageFile _file;
    private readonly long _fileLength;
    private readonly Qcow2Metadata _meta;
    private readonly int _clusterBits;
    private readonly int _l2Bits;
    private readonly int _wordsPerEntry;
    private readonly int _subclusterBits;
    private readonly bool _version2;
    /// <summary>L2 table offsets of the L1 entries that map the disk (0: unallocated), checked at open.</summary>
    private readonly long[] _l1;
    private readonly Qcow2L2Cache _cache;
    private readonly IBlockDevice? _backing;
    private readonly Qcow2ReadContext?[] _contexts = new Qcow2ReadContext?[16];
    private bool _disposed;

    /// <summary>The image file (symlinks resolved).</summary>
    public string Path { get; }
    /// <summary>Virtual size: the image's, or the snapshot's when one is read.</summary>
    public long Size { get; }
    public int ClusterSize => 1 << _clusterBits;
    public int Version => (int)_meta.Header.Version;
    /// <summary>The backing file name as stored in the image (not resolved), or null.</summary>
    public string? BackingFile => _meta.BackingFile;
    /// <summary>The backing format from the header extension, or null when the image does not say.</summary>
    public string? BackingFormat => _meta.BackingFormat;
    /// <summary>The opened backing device, or null.</summary>
    public IBlockDevice? Backing => _backing;
    public IReadOnlyList<Qcow2SnapshotInfo> Snapshots { get; }
    /// <summary>The internal snapshot this device reads, or null for the active disk.</summary>
    public string? Snapshot { get; }
    public bool ExtendedL2 => _meta.ExtendedL2;
    public Qcow2CompressionType CompressionType => _meta.Header.CompressionType;
    /// <summary>The dirty bit: refcounts may be stale (lazy refcounts); the mappings this reader uses are still valid.</summary>
    public bool Dirty => (_meta.Header.IncompatibleFeatures & Qcow2IncompatibleFeatures.Dirty) != 0;
    /// <summary>The corrupt bit: qemu found an inconsistency; reading is allowed, every table is checked as it is used.</summary>
    public bool Corrupt => (_meta.Header.IncompatibleFeatures & Qcow2IncompatibleFeatures.Corrupt) != 0;
    /// <summary>L2 tables read from the file so far.</summary>
    internal long L2TableLoads => _cache.Loads;
    internal int L2CacheCapacity => _cache.Capacity;

    public BlockDeviceCapabilities Capabilities => BlockDeviceCapabilities.ReadOnly;

    private Qcow2Image(string path, IStorageFile file, long fileLength, Qcow2Metadata meta, string? snapshot, long size, long[] l1,
        IBlockDevice? backing, long cacheBytes)
    {
        Path = path;
        _file = file;
        _fileLength = fileLength;
        _meta = meta;
        Snapshot = snapshot;
        Size = size;
        _l1 = l1;
        _backing = backing;
        _clusterBits = meta.ClusterBits;
        _l2Bits = Qcow2Metadata.L2EntryBits(_clusterBits, meta.ExtendedL2);
        _wordsPerEntry = meta.ExtendedL2 ? 2 : 1;
        _subclusterBits = _clusterBits - 5;
        _version2 = meta.Header.Version < 3;
        long tables = l1.LongCount(o => o != 0);
        _cache = new Qcow2L2Cache(file, path, ClusterSize, (int)Math.Clamp(Math.Min(cacheBytes >> _clusterBits, tables), 1, int.MaxValue));
        Snapshots = meta.Snapshots.Select(s => new Qcow2SnapshotInfo(s.Id, s.Name, (long)(s.VirtualDiskSize ?? meta.Header.Size),
            DateTime.UnixEpoch.AddSeconds(s.DateSeconds).AddTicks(s.DateNanoseconds / 100), (long)Math.Min(s.VmStateSize, long.MaxValue))).ToArray();
    }

    // ---- the walk: guest range → segments of one kind ----

    private enum SegmentKind { Data, Zero, Unallocated, Compressed }

    /// <summary>A piece of the guest range with one source. Host: file offset of Start (Data) or the compressed data (Compressed).</summary>
    private struct Segment
    {
        public SegmentKind Kind;
        public long Start, Length;
        public long Host;
        public uint Sectors;
        public long ClusterStart;
    }

    /// <summary>Where a walk is, and the window of L2 words it has copied out of the cache.</summary>
    private struct Walk(long start, long end)
    {
        public long Position = start;
        public readonly long End = end;
        public long WindowFirst = -1;
        public int WindowCount;
        public long WindowTable;
    }

    private long GuestClusterCount(long end) => ((end - 1) >> _clusterBits) + 1;

    private void LoadWindow(ref Walk walk, Qcow2ReadContext context, long cluster)
    {
        long l1Index = cluster >> _l2Bits;
        int first = (int)(cluster & ((1L << _l2Bits) - 1));
        long inTable = (1L << _l2Bits) - first, inRequest = GuestClusterCount(walk.End) - cluster;
        long table = l1Index < _l1.Length ? _l1[l1Index] : 0;
        walk.WindowFirst = cluster;
        walk.WindowTable = table;
        if (table == 0)
        {
            walk.WindowCount = (int)Math.Min(inTable, inRequest);   // the whole unallocated table at once
            return;
        }
        int count = (int)Math.Min(Math.Min(inTable, inRequest), Qcow2ReadContext.WindowClusters);
        _cache.Copy(table, first * _wordsPerEntry, context.Entries.AsSpan(0, count * _wordsPerEntry));
        walk.WindowCount = count;
    }

    private bool Next(ref Walk walk, Qcow2ReadContext context, out Segment segment)
    {
        segment = default;
        long pos = walk.Position;
        if (pos >= walk.End) return false;
        long cluster = pos >> _clusterBits;
        if (cluster < walk.WindowFirst || cluster >= walk.WindowFirst + walk.WindowCount) LoadWindow(ref walk, context, cluster);
        if (walk.WindowTable == 0)
        {
            long tableEnd = Math.Min(walk.End, (walk.WindowFirst + walk.WindowCount) << _clusterBits);
            segment = new Segment { Kind = SegmentKind.Unallocated, Start = pos, Length = tableEnd - pos };
            walk.Position = tableEnd;
            return true;
        }
        int index = (int)(cluster - walk.WindowFirst) * _wordsPerEntry;
        var entry = new Qcow2L2Entry(context.Entries[index]);
        long clusterStart = cluster << _clusterBits;
        long clusterEnd = Math.Min(walk.End, clusterStart + ClusterSize);
        long inCluster = pos - clusterStart;
        var m = entry.Decode(_clusterBits, _meta.ExtendedL2);
        long end = clusterEnd;
        switch (m.Kind)
        {
            case Qcow2ClusterKind.Compressed:
                segment.Kind = SegmentKind.Compressed;
                segment.Host = (long)Math.Min(m.HostOffset, long.MaxValue);
                segment.Sectors = m.CompressedSectors;
                segment.ClusterStart = clusterStart;
                break;
            case Qcow2ClusterKind.Zero:
                if (_version2) throw CorruptEntry(walk, cluster, entry, "is a zero cluster, which version 2 images cannot have");
                segment.Kind = SegmentKind.Zero;
                break;
            default:
                if (m.Kind == Qcow2ClusterKind.Standard && m.HostOffset % (ulong)ClusterSize != 0)
                    throw CorruptEntry(walk, cluster, entry, $"points at misaligned cluster offset 0x{m.HostOffset:x}");
                var state = m.Kind == Qcow2ClusterKind.Standard ? Qcow2SubclusterState.Allocated : Qcow2SubclusterState.Unallocated;
                if (_meta.ExtendedL2)
                {
                    var bitmap = new Qcow2SubclusterBitmap(context.Entries[index + 1]);
                    if (bitmap.HasInvalid) throw CorruptEntry(walk, cluster, entry, $"has subclusters both allocated and zero (bitmap 0x{bitmap.Raw:x16})");
                    if (m.Kind == Qcow2ClusterKind.Unallocated && bitmap.AllocatedMask != 0)
                        throw CorruptEntry(walk, cluster, entry, $"has allocated subclusters but no host cluster (bitmap 0x{bitmap.Raw:x16})");
                    int sub = (int)(inCluster >> _subclusterBits), last = sub;
                    state = bitmap.State(sub);
                    while (last + 1 < Qcow2SubclusterBitmap.SubclustersPerCluster && bitmap.State(last + 1) == state) last++;
                    end = Math.Min(clusterEnd, clusterStart + ((long)(last + 1) << _subclusterBits));
                }
                segment.Kind = state switch
                {
                    Qcow2SubclusterState.Allocated => SegmentKind.Data,
                    Qcow2SubclusterState.Zero => SegmentKind.Zero,
                    _ => SegmentKind.Unallocated,
                };
                if (segment.Kind == SegmentKind.Data)
                {
                    long host = (long)m.HostOffset + inCluster;
                    if (host > _fileLength || end - pos > _fileLength - host)
                        throw CorruptEntry(walk, cluster, entry, $"points at host cluster 0x{m.HostOffset:x}, past the end of the file ({_fileLength} bytes)");
                    segment.Host = host;
                }
                break;
        }
        segment.Start = pos;
        segment.Length = end - pos;
        walk.Position = end;
        return true;
    }

    private CorruptImageException CorruptEntry(in Walk walk, long cluster, Qcow2L2Entry entry, string what) =>
        new($"qcow2 image {Path}: the L2 entry for guest offset 0x{cluster << _clusterBits:x} (L2 table at 0x{walk.WindowTable:x}, entry 0x{entry.Raw:x16}) {what}");

    // ---- reads ----

    public void Read(long offset, Span<byte> buffer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (offset < 0 || offset > Size - buffer.Length)
            throw new BlockDeviceException($"I/O at {offset}+{buffer.Length} is outside the disk ({Size} bytes)");
        if (buffer.IsEmpty) return;
        var context = RentContext();
        try
        {
            var walk = new Walk(offset, offset + buffer.Length);
            Segment run = default;
            bool pending = false;
            while (Next(ref walk, context, out var segment))
            {
                if (pending && run.Kind == segment.Kind && segment.Kind != SegmentKind.Compressed &&
                    (segment.Kind != SegmentKind.Data || run.Host + run.Length == segment.Host))
                {
                    run.Length += segment.Length;   // contiguous clusters: one pread, one memset, one backing read
                    continue;
                }
                if (pending) Execute(run, offset, buffer, context);
                run = segment;
                pending = true;
            }
            if (pending) Execute(run, offset, buffer, context);
        }
        finally { ReturnContext(context); }
    }

    private void Execute(in Segment run, long offset, Span<byte> buffer, Qcow2ReadContext context)
    {
        var target = buffer.Slice((int)(run.Start - offset), (int)run.Length);
        switch (run.Kind)
        {
            case SegmentKind.Data:
                if (_file.Read(run.Host, target) != target.Length)
                    throw new CorruptImageException($"qcow2 image {Path}: the file ends inside the data at 0x{run.Host:x} (guest offset 0x{run.Start:x})");
                break;
            case SegmentKind.Zero:
                target.Clear();
                break;
            case SegmentKind.Unallocated:
                ReadBacking(run.Start, target);
                break;
            case SegmentKind.Compressed:
                Inflate(run, context).AsSpan((int)(run.Start - run.ClusterStart), target.Length).CopyTo(target);
                break;
        }
    }

    /// <summary>Unallocated here: the backing device's bytes, zeros without one and past its end.</summary>
    private void ReadBacking(long start, Span<byte> target)
    {
        long available = _backing is null ? 0 : Math.Clamp(_backing.Size - start, 0, target.Length);
        if (available > 0) _backing!.Read(start, target[..(int)available]);
        target[(int)available..].Clear();
    }

    private byte[] Inflate(in Segment run, Qcow2ReadContext context)
    {
        ulong host = (ulong)run.Host;
        if (context.Cached(host, run.Sectors) is { } cached) return cached;
        var m = new Qcow2ClusterMapping(Qcow2ClusterKind.Compressed, host, run.Sectors);
        // The data may end inside its last sector, and that sector at the end of the file: the sector must start inside it.
        if (host >= (ulong)_fileLength || m.CompressedLastSectorStart >= (ulong)_fileLength)
            throw CorruptCompressed(run, $"runs past the end of the file ({_fileLength} bytes)");
        if (host < (ulong)ClusterSize) throw CorruptCompressed(run, "overlaps the header cluster");
        int length = (int)Math.Min(m.CompressedLength, (ulong)_fileLength - host);   // at most 2 clusters (sector count has cluster_bits - 8 bits)
        var input = context.CompressedBuffer.AsSpan(0, length);
        if (_file.Read(run.Host, input) != length) throw CorruptCompressed(run, "is cut off by the end of the file");
        int produced = context.Inflate(CompressionType, length, host, run.Sectors);
        if (produced < 0) throw CorruptCompressed(run, $"is not valid {CompressionType} data");
        if (produced != ClusterSize) throw CorruptCompressed(run, $"inflates to {produced} bytes, not one cluster ({ClusterSize})");
        return context.Cluster;
    }

    private CorruptImageException CorruptCompressed(in Segment run, string what) =>
        new($"qcow2 image {Path}: the compressed cluster for guest offset 0x{run.ClusterStart:x} (at 0x{run.Host:x}, {run.Sectors} sectors) {what}");

    private Qcow2ReadContext RentContext()
    {
        for (int i = 0; i < _contexts.Length; i++)
            if (Interlocked.Exchange(ref _contexts[i], null) is { } context) return context;
        return new Qcow2ReadContext(_wordsPerEntry, ClusterSize);
    }

    private void ReturnContext(Qcow2ReadContext context)
    {
        for (int i = 0; i < _contexts.Length; i++)
            if (Interlocked.CompareExchange(ref _contexts[i], context, null) is null) return;
        context.Dispose();
    }

    // ---- map ----

    /// <summary>The runs of the whole disk.</summary>
    public List<MapRun> Map() => Map(0, Size, 0);

    /// <summary>
    /// What [start, end) reads: data clusters as <see cref="MapSource.Own"/> with their file offset (compressed
    /// ones with none), zero clusters as <see cref="MapSource.Zero"/>, and unallocated ranges as the backing device
    /// maps them (depth + 1), or <see cref="MapSource.Unallocated"/> without one and past its end.
    /// </summary>
    public List<MapRun> Map(long start, long end, int depth)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || end > Size || start > end) throw new ArgumentOutOfRangeException(nameof(start), $"range {start}..{end} is outside the disk (size {Size})");
        var runs = new List<MapRun>();
        var context = RentContext();
        try
        {
            var walk = new Walk(start, end);
            long unallocatedStart = -1, unallocatedEnd = -1;
            while (Next(ref walk, context, out var s))
            {
                if (s.Kind == SegmentKind.Unallocated)
                {
                    if (unallocatedEnd != s.Start) { FlushBelow(); unallocatedStart = s.Start; }
                    unallocatedEnd = s.Start + s.Length;
                    continue;
                }
                FlushBelow();
                CowImage.Append(runs, s.Kind switch
                {
                    SegmentKind.Data => new MapRun(s.Start, s.Length, MapSource.Own, depth, s.Host, Path),
                    SegmentKind.Compressed => new MapRun(s.Start, s.Length, MapSource.Own, depth, null, Path),
                    _ => new MapRun(s.Start, s.Length, MapSource.Zero, depth, null, null),
                });
            }
            FlushBelow();

            void FlushBelow()
            {
                if (unallocatedStart < 0) return;
                long from = unallocatedStart, to = unallocatedEnd;
                unallocatedStart = unallocatedEnd = -1;
                long backingEnd = _backing is null ? from : Math.Clamp(_backing.Size, from, to);
                if (backingEnd > from) foreach (var r in BaseImage.MapOf(_backing!, from, backingEnd, depth + 1)) CowImage.Append(runs, r);
                if (backingEnd < to) CowImage.Append(runs, new MapRun(backingEnd, to - backingEnd, MapSource.Unallocated, depth, null, null));
            }
        }
        finally { ReturnContext(context); }
        return runs;
    }

    public ImageInfo GetInfo() => new()
    {
        Path = Path,
        Format = BaseImage.Qcow2Format,
        FormatVersion = Version,
        VirtualSize = Size,
        ClusterSize = ClusterSize,
        DiskBytes = HostFile.AllocatedBytes(Path),
        Clean = !Dirty,
        BackingFile = BackingFile,
        BackingFormat = BackingFormat,
        Files = [Path],
        Backing = _backing is null ? null : BaseImage.Info(_backing),
        Snapshot = Snapshot,
        Snapshots = Snapshots.Select((s, i) => new Snapshots.SnapshotInfo(int.TryParse(s.Id, out int id) ? id : i + 1, s.Name, 0, s.CreatedUtc)
        {
            VirtualSize = s.VirtualSize, VmStateSize = s.VmStateSize,
        }).ToArray(),
    };

    // ---- the rest of IBlockDevice: read-only ----

    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None) => throw ReadOnlyError();
    public void Discard(long offset, long length) => throw ReadOnlyError();
    public void WriteZeroes(long offset, long length) => throw ReadOnlyError();
    /// <summary>Nothing is ever written, so nothing needs flushing.</summary>
    public void Flush() { }

    private BlockDeviceException ReadOnlyError() => new($"{Path} is a qcow2 image, opened read-only");

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        for (int i = 0; i < _contexts.Length; i++) Interlocked.Exchange(ref _contexts[i], null)?.Dispose();
        _file.Dispose();
        _backing?.Dispose();
    }

    // ---- open ----

    public static Qcow2Image Open(string path, Qcow2OpenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string full = ImageFiles.For(path).DataPath;
        string what = options.Depth == 0 ? "image" : "backing file";
        if (options.Depth > BaseImage.MaxChainDepth) throw new ImageOpenException($"backing chain is deeper than {BaseImage.MaxChainDepth} (a loop?) at {full}");
        if (Directory.Exists(full)) throw new ImageOpenException($"{what} {full} is a folder, not an image");
        if (!File.Exists(full)) throw new ImageOpenException($"{what} {full} does not exist");
        IStorageFile file;
        try { file = HostStorage.Instance.Open(full, StorageAccess.Read); }
        catch (StorageException e) { throw new ImageOpenException(e.Message); }
        IBlockDevice? backing = null;
        try
        {
            if (!file.TryLock(exclusive: false))
                throw new ImageLockedException($"{full} is open for writing by another process{LockHolder.Describe(full)}");
            long fileLength = file.Length;
            var meta = Qcow2Metadata.Read(file, fileLength, full);
            ulong size = meta.Header.Size, l1Offset = meta.Header.L1TableOffset;
            string? snapshotName = null;
            if (options.Snapshot is { } wanted)
            {
                var entry = meta.Snapshots.FirstOrDefault(s => s.Name == wanted) ?? meta.Snapshots.FirstOrDefault(s => s.Id == wanted)
                    ?? throw new ImageOpenException($"{full} has no snapshot named '{wanted}'");
                snapshotName = entry.Name;
                size = entry.VirtualDiskSize ?? meta.Header.Size;
                l1Offset = entry.L1TableOffset;
            }
            long entries = Qcow2Metadata.L1EntriesFor(size, meta.ClusterBits, meta.ExtendedL2);
            var l1 = LoadL1(file, fileLength, full, l1Offset, entries, meta.ClusterSize, snapshotName);
            if (meta.BackingFile is { } stored) backing = OpenBacking(full, stored, meta.BackingFormat, options);
            return new Qcow2Image(full, file, fileLength, meta, snapshotName, (long)size, l1, backing, options.L2CacheBytes);
        }
        catch
        {
            backing?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The L1 entries that map the disk (entries past them, such as a snapshot's VM state, are never read), as
    /// L2 table offsets, each checked: cluster aligned (so never the header cluster: 0 is "unallocated") and a
    /// whole table inside the file.
    /// </summary>
    private static long[] LoadL1(IStorageFile file, long fileLength, string path, ulong offset, long entries, int clusterSize, string? snapshot)
    {
        var l1 = new long[entries];   // at most Qcow2Metadata.MaxL1Entries (checked at open): 32 MiB
        var bytes = MemoryMarshal.AsBytes(l1.AsSpan());
        string table = snapshot is null ? "L1 table" : $"L1 table of snapshot '{snapshot}'";
        if (bytes.Length > 0 && file.Read((long)offset, bytes) != bytes.Length)
            throw new CorruptImageException($"qcow2 image {path}: the {table} at 0x{offset:x} is cut off by the end of the file");
        for (long i = 0; i < l1.Length; i++)
        {
            var entry = Qcow2L1Entry.Read(bytes.Slice((int)(i * Qcow2L1Entry.EncodedSize), Qcow2L1Entry.EncodedSize));
            ulong l2 = entry.L2TableOffset;
            if (l2 != 0 && l2 % (ulong)clusterSize != 0)
                throw new CorruptImageException($"qcow2 image {path}: {table} entry {i} points at an L2 table at misaligned offset 0x{l2:x}");
            if (l2 != 0 && (l2 > (ulong)fileLength || (ulong)clusterSize > (ulong)fileLength - l2))
                throw new CorruptImageException($"qcow2 image {path}: {table} entry {i} points at an L2 table at 0x{l2:x}, past the end of the file ({fileLength} bytes)");
            l1[i] = (long)l2;
        }
        return l1;
    }

    /// <summary>
    /// Opens the backing file if the path policy lets us (<see cref="Qcow2BackingPath"/>): through BaseImage so that
    /// cowdisk, raw and qcow2 bases all work, raw without probing when the image says "raw".
    /// </summary>
    private static IBlockDevice OpenBacking(string imagePath, string stored, string? format, Qcow2OpenOptions options)
    {
        string resolved = Qcow2BackingPath.Resolve(imagePath, stored, options.AllowAnyBackingPath);
        var below = options.Chain.Append(imagePath).ToArray();
        string real = ImageFiles.For(resolved).DataPath;
        if (below.Contains(real)) throw new ImageOpenException($"backing chain loops: {string.Join(" -> ", below.Append(real))}");
        if (!File.Exists(resolved)) throw new ImageOpenException($"backing file {resolved} of {imagePath} does not exist (stored as '{stored}')");
        switch (format)
        {
            case BaseImage.RawFormat:
                return BaseImage.OpenRaw(resolved, options.Depth + 1);
            case null or BaseImage.Qcow2Format:
                if (format is not null && !HostFile.IsRegularFile(resolved)) break;   // BaseImage.Open says what it is
                if (format is not null && BaseImage.Probe(resolved) != BaseImage.Qcow2Format)
                    throw new ImageOpenException($"backing file {resolved} of {imagePath} is declared qcow2 but is not a qcow2 image");
                break;
            default:
                throw new ImageOpenException($"backing file {resolved} of {imagePath} has format '{format}', which is not supported (raw, qcow2 or cowdisk)");
        }
        return BaseImage.Open(resolved, options.Depth + 1, below);
    }
}
