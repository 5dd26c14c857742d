using System.Buffers.Binary;

namespace CowDisk.Format.Image;

/// <summary>
/// The header at offset 0 of an image's data file. Big-endian, like qcow2, so a hex dump reads naturally.
/// The rest of cluster 0 is reserved; extents start at cluster 1.
/// </summary>
public readonly record struct ImageHeader(
    uint Version,
    Guid ImageId,
    int ClusterSize,
    long VirtualSize)
{
    /// <summary>Incompatible features: a reader that does not know a set bit must refuse the image.</summary>
    public ImageHeaderFlags Flags { get; init; }

    public static ReadOnlySpan<byte> Magic => "CowDisk\0"u8;
    /// <summary>2: the metadata log is framed (docs/FORMAT.md §3.4) and header flags exist. A build that only
    /// knows 1 must refuse such an image rather than miss committed mappings in the framed log.</summary>
    /// <summary>3: snapshots (epoch tree, dead extents). A build that knows only 2 would free what a snapshot reads.
    /// 4: layered blocks (a first write after a snapshot copies nothing). A build that knows only 3 would read
    /// their unwritten subclusters from the wrong cluster.</summary>
    public const uint CurrentVersion = 4;
    /// <summary>Version-1 images are read as they are and upgraded to 2 at their first writable open.</summary>
    public const uint OldestVersion = 1;

    public const int MagicOffset = 0;          // 8 bytes "CowDisk\0"
    public const int VersionOffset = 8;        // u32
    public const int HeaderSizeOffset = 12;    // u32, bytes of header in use (for later growth)
    public const int ImageIdOffset = 16;       // 16 bytes, RFC 4122 big-endian byte order
    public const int ClusterSizeOffset = 32;   // u32
    public const int FlagsOffset = 36;         // u32 ImageHeaderFlags (zero in images made before flags existed)
    public const int VirtualSizeOffset = 40;   // u64
    public const int ChecksumOffset = 48;      // u32 FNV-1a over bytes [0, 48)
    public const int Size = 52;

    /// <summary>Bytes reserved for the header at the start of the data file.</summary>
    public const int ReservedBytes = 4096;

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("header buffer too small", nameof(destination));
        destination[..Size].Clear();
        Magic.CopyTo(destination[MagicOffset..]);
        BinaryPrimitives.WriteUInt32BigEndian(destination[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt32BigEndian(destination[HeaderSizeOffset..], Size);
        ImageId.TryWriteBytes(destination.Slice(ImageIdOffset, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ClusterSizeOffset..], (uint)ClusterSize);
        BinaryPrimitives.WriteUInt32BigEndian(destination[FlagsOffset..], (uint)Flags);
        BinaryPrimitives.WriteUInt64BigEndian(destination[VirtualSizeOffset..], (ulong)VirtualSize);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ChecksumOffset..], Checksum(destination[..ChecksumOffset]));
    }

    /// <summary>Parses and validates a header; throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static ImageHeader Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size || !source[..Magic.Length].SequenceEqual(Magic))
            throw new FormatException("not a cowdisk image (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32BigEndian(source[VersionOffset..]);
        if (version < OldestVersion || version > CurrentVersion)
            throw new FormatException($"unsupported cowdisk format version {version} (this build reads {OldestVersion} to {CurrentVersion})");
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(source[ChecksumOffset..]);
        if (stored != Checksum(source[..ChecksumOffset]))
            throw new FormatException("cowdisk header checksum mismatch");
        var id = new Guid(source.Slice(ImageIdOffset, 16), bigEndian: true);
        uint clusterSize = BinaryPrimitives.ReadUInt32BigEndian(source[ClusterSizeOffset..]);
        ulong virtualSize = BinaryPrimitives.ReadUInt64BigEndian(source[VirtualSizeOffset..]);
        if (!ClusterGeometry.IsValidClusterSize(clusterSize))
            throw new FormatException($"invalid cluster size {clusterSize} in header");
        if (virtualSize == 0 || virtualSize > ClusterGeometry.MaxVirtualSize)
            throw new FormatException($"invalid virtual size {virtualSize} in header");
        var flags = (ImageHeaderFlags)BinaryPrimitives.ReadUInt32BigEndian(source[FlagsOffset..]);
        if ((flags & ~ImageHeaderFlags.Known) != 0)
            throw new FormatException($"image uses features this build does not know (header flags 0x{(uint)flags:x})");
        return new ImageHeader(version, id, (int)clusterSize, (long)virtualSize) { Flags = flags };
    }

    // FNV-1a: catches torn or hand-edited headers; not a security measure.
    private static uint Checksum(ReadOnlySpan<byte> bytes)
    {
        uint hash = 2166136261;
        foreach (byte b in bytes) hash = (hash ^ b) * 16777619;
        return hash;
    }
}
