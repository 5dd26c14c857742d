using System.Buffers.Binary;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images.Qcow2;
using CowDisk.Engine.Native;
using CowDisk.Format.Image;

namespace CowDisk.Engine.Images;

/// <summary>Opens a read-only base image by probing its first bytes: cowdisk, qcow2, or raw.</summary>
public static class BaseImage
{
    public const string CowDiskFormat = "cowdisk";
    public const string RawFormat = "raw";
    public const string Qcow2Format = "qcow2";
    /// <summary>Deep enough for real chains, shallow enough to stop a loop of images naming each other.</summary>
    public const int MaxChainDepth = 64;
    private const uint Qcow2Magic = 0x514649FB;   // "QFI\xfb"

    public static string Probe(string path)
    {
        Span<byte> head = stackalloc byte[8];
        int n;
        Storage.HostStorage.RequireOpenable(path);
        using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            n = RandomAccess.Read(handle, head, 0);
        if (n >= 8 && head.SequenceEqual(ImageHeader.Magic)) return CowDiskFormat;
        if (n >= 4 && BinaryPrimitives.ReadUInt32BigEndian(head) == Qcow2Magic) return Qcow2Format;
        // Cowdisk metadata beside it means a cowdisk image whose header was lost: damaged, not raw.
        string metadata = ImageFiles.For(path).MetadataPath;
        if (File.Exists(metadata))
            throw new CorruptImageException($"{path} is a damaged cowdisk image: its header is not a cowdisk header (bad magic), yet {metadata} beside it is cowdisk metadata");
        return RawFormat;
    }

    public static IBlockDevice Open(string path, int depth) => Open(path, depth, Array.Empty<string>());

    /// <param name="chain">The images above this one, to report a loop as a loop rather than a lock conflict.</param>
    internal static IBlockDevice Open(string path, int depth, IReadOnlyList<string> chain)
    {
        // IMAGE@SNAPSHOT: the snapshot's read-only view (a clone's base).
        if (ImageRef.Parse(path) is { Snapshot: { } snapshot } named)
        {
            string format = BaseImage.Probe(named.Path);
            if (format == Qcow2Format)   // a qcow2 internal snapshot, by name or id
                return Qcow2Image.Open(named.Path, new Qcow2OpenOptions { Snapshot = snapshot, Depth = depth, Chain = chain, AllowAnyBackingPath = AllowAnyBackingPath });
            if (format != CowDiskFormat) throw new ImageOpenException($"{named.Path} is not a cowdisk or qcow2 image, so it has no snapshot '{snapshot}'");
            try { return CowImage.Open(named.Path, new ImageOpenOptions { ReadOnly = true, Snapshot = snapshot }, depth, chain); }
            catch (ImageLockedException) when (HeldSnapshotOpener is { } viaWriter)
            {
                var view = viaWriter(named.Path, snapshot);   // its writer serves the snapshot's mappings
                if (view is null) throw;
                return view;
            }
        }
        CheckOpenable(path, depth);
        return Probe(path) switch
        {
            CowDiskFormat => CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }, depth, chain),
            Qcow2Format => Qcow2Image.Open(path, new Qcow2OpenOptions { Depth = depth, Chain = chain, AllowAnyBackingPath = AllowAnyBackingPath }),
            _ => new RawFileDevice(path, readOnly: true),
        };
    }

    /// <summary>
    /// Whether a qcow2's backing file may be any path (absolute, or outside the image's folder); by default only
    /// names relative to its folder are followed. Process-wide, set from the Engine:AllowAnyBackingPath setting.
    /// </summary>
    public static bool AllowAnyBackingPath { get; set; }

    /// <summary>
    /// A base opened as the format recorded (or named) for it: "raw" whatever its first bytes say; another format
    /// must be what the probe finds. Null (images made before formats were recorded): probed.
    /// </summary>
    /// <param name="above">The image whose base this is, for the message.</param>
    internal static IBlockDevice OpenAs(string path, string? format, int depth, IReadOnlyList<string> chain, string? above = null)
    {
        if (format is null || ImageRef.Parse(path).Snapshot is not null) return Open(path, depth, chain);
        if (format == RawFormat) return OpenRaw(path, depth);
        if (format is not (CowDiskFormat or Qcow2Format)) throw new ImageOpenException($"backing format '{format}' is not one cowdisk reads (raw, cowdisk, qcow2)");
        CheckOpenable(path, depth);
        string found = Probe(path);
        if (found != format)
            throw new CorruptImageException(above is null
                ? $"{path} is a {found} image, not {format}"
                : $"backing file {path} of {above} was a {format} image and now reads as {found}: refusing to guess");
        return Open(path, depth, chain);
    }

    /// <summary>A base read as raw whatever its first bytes say (a qcow2 image whose backing format is "raw").</summary>
    internal static IBlockDevice OpenRaw(string path, int depth)
    {
        CheckOpenable(path, depth);
        return new RawFileDevice(path, readOnly: true);
    }

    private static void CheckOpenable(string path, int depth)
    {
        string what = depth == 0 ? "image" : "backing file";
        if (depth > MaxChainDepth) throw new ImageOpenException($"backing chain is deeper than {MaxChainDepth} (a loop?) at {path}");
        if (Directory.Exists(path)) throw new ImageOpenException($"{what} {path} is a folder, not an image");
        // stat follows symlinks: a dangling one, which File.Exists accepts, fails it.
        if (!File.Exists(path) || HostFile.Inode(path) is null) throw new ImageOpenException($"{what} {path} does not exist");
        if (!HostFile.IsRegularFile(path)) throw new ImageOpenException($"{what} {path} is not a regular file, so not a usable image");
        // An empty base has nothing to read through to (and no size to give an overlay).
        if (depth > 0 && new FileInfo(path).Length == 0) throw new ImageOpenException($"{what} {path} is empty (0 bytes), so not a usable image");
    }

    /// <summary>
    /// Opens a snapshot view of an image another process holds for writing, through that process (set by the
    /// frontends, which know where running writers listen); null when no such writer can be asked.
    /// </summary>
    public static Func<string, string, IBlockDevice?>? HeldSnapshotOpener { get; set; }

    /// <summary>IMAGE@SNAPSHOT (or an image) for reading: through its writer when another process holds it.</summary>
    public static IBlockDevice OpenForReading(ImageRef named, EngineSettings settings)
    {
        // stat follows symlinks: a dangling one is left to the open below, which names what is missing.
        string? format = HostFile.Inode(named.Path) is not null && HostFile.IsRegularFile(named.Path) ? Probe(named.Path) : null;
        if (format == Qcow2Format)   // read-only anyway: no writer to go through
            return Qcow2Image.Open(named.Path, new Qcow2OpenOptions { Snapshot = named.Snapshot, AllowAnyBackingPath = AllowAnyBackingPath });
        // Raw only when nothing else matched, and only read: a read-only open is the one place it may be guessed.
        if (format == RawFormat && named.Snapshot is null) return new RawFileDevice(named.Path, readOnly: true);
        if (format == RawFormat) throw new ImageOpenException($"{named.Path} is a raw image, so it has no snapshot '{named.Snapshot}'");
        if (named.Snapshot is null) return CowImage.Open(named.Path, new ImageOpenOptions { ReadOnly = true, Settings = settings });
        try { return CowImage.Open(named.Path, new ImageOpenOptions { ReadOnly = true, Snapshot = named.Snapshot, Settings = settings }); }
        catch (ImageLockedException) when (HeldSnapshotOpener is { } viaWriter)
        {
            var view = viaWriter(named.Path, named.Snapshot);
            if (view is null) throw;
            return view;
        }
    }

    /// <summary>The cowdisk image id (and snapshot epoch, for a snapshot view) a base device is, or nulls for raw.</summary>
    public static (Guid? Id, long? Epoch) IdentityOf(IBlockDevice device) => device switch
    {
        CowImage cow => (cow.ImageId, cow.Snapshot?.Epoch),
        SnapshotView view => (view.ImageId, view.Epoch),
        _ => (null, null),
    };

    /// <summary>What a base layer maps in [start, end): a cowdisk or qcow2 image or snapshot view by its mappings, a raw file as data.</summary>
    internal static List<MapRun> MapOf(IBlockDevice device, long start, long end, int depth) => device switch
    {
        CowImage cow => cow.Map(start, end, depth),
        SnapshotView view => view.Map(start, end, depth),
        Qcow2Image qcow2 => qcow2.Map(start, end, depth),
        RawFileDevice raw => RawMap(raw, start, end, depth),
        _ => [new MapRun(start, end - start, MapSource.Base, depth, start, PathOf(device))],
    };

    /// <summary>A raw file's data (SEEK_DATA) as base data; its holes read as zeros, so they are unallocated.</summary>
    private static List<MapRun> RawMap(RawFileDevice raw, long start, long end, int depth)
    {
        var runs = new List<MapRun>();
        long at = start;
        foreach (var (offset, length) in raw.DataRanges())
        {
            long dataStart = Math.Max(offset, at), dataEnd = Math.Min(offset + length, end);
            if (dataEnd <= dataStart) continue;
            if (dataStart > at) runs.Add(new MapRun(at, dataStart - at, MapSource.Unallocated, depth, null, null));
            runs.Add(new MapRun(dataStart, dataEnd - dataStart, MapSource.Base, depth, dataStart, raw.Path));
            at = dataEnd;
        }
        if (at < end) runs.Add(new MapRun(at, end - at, MapSource.Unallocated, depth, null, null));
        return runs;
    }

    /// <summary>What the whole device reads from, run by run (any format: cowdisk, a snapshot view, qcow2, raw).</summary>
    public static List<MapRun> Map(IBlockDevice device) => MapOf(device, 0, device.Size, 0);

    /// <summary>Every file a device reads: the image's own files, then each base's, down the chain.</summary>
    public static List<string> ChainFiles(IBlockDevice device)
    {
        var files = new List<string>();
        for (IBlockDevice? layer = device; layer is not null;)
        {
            switch (layer)
            {
                case CowImage cow: files.AddRange(cow.Files.Existing()); layer = cow.Base; break;
                case Qcow2Image q: files.Add(q.Path); layer = q.Backing; break;
                case SnapshotView view: files.Add(view.ImagePath); layer = null; break;
                case RawFileDevice raw: files.Add(raw.Path); layer = null; break;
                default: layer = null; break;
            }
        }
        return files;
    }

    /// <summary>The file a base device reads.</summary>
    public static string? PathOf(IBlockDevice device) => device switch
    {
        CowImage cow => cow.Files.DataPath,
        RawFileDevice raw => raw.Path,
        SnapshotView view => view.ImagePath,
        Qcow2Image qcow2 => qcow2.Path,
        _ => null,
    };

    public static string FormatName(IBlockDevice device) => device switch
    {
        CowImage or SnapshotView => CowDiskFormat,
        Qcow2Image => Qcow2Format,
        _ => RawFormat,
    };

    public static ImageInfo Info(IBlockDevice device) => device switch
    {
        CowImage cow => cow.GetInfo(),
        Qcow2Image qcow2 => qcow2.GetInfo(),
        RawFileDevice raw => new ImageInfo
        {
            Path = raw.Path, Format = RawFormat, VirtualSize = raw.Size,
            DiskBytes = HostFile.AllocatedBytes(raw.Path), Files = new[] { raw.Path },
        },
        SnapshotView view => new ImageInfo
        {
            Path = view.ImagePath, Format = CowDiskFormat, VirtualSize = view.Size, Snapshot = view.SnapshotName, ImageId = view.ImageId,
            DiskBytes = HostFile.AllocatedBytes(view.ImagePath), Files = new[] { view.ImagePath }, InUse = true,
        },
        _ => throw new ArgumentException($"unknown device {device.GetType().Name}"),
    };
}
