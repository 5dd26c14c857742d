namespace CowDisk.Format.Qcow2;

/// <summary>
/// A decoded L2 entry, apart from its raw bits (<see cref="Qcow2L2Entry"/>). For <see cref="Qcow2ClusterKind.Standard"/>
/// and <see cref="Qcow2ClusterKind.Zero"/>, <see cref="HostOffset"/> is the host cluster (0 for a zero cluster with no
/// preallocation). For <see cref="Qcow2ClusterKind.Compressed"/>, it is the byte where the compressed data starts and
/// <see cref="CompressedSectors"/> counts the 512-byte sectors it touches: the one holding <see cref="HostOffset"/>
/// plus the stored number of additional sectors.
/// </summary>
public readonly record struct Qcow2ClusterMapping(Qcow2ClusterKind Kind, ulong HostOffset = 0, uint CompressedSectors = 0)
{
    public const int SectorSize = 512;

    public static Qcow2ClusterMapping Unallocated => new(Qcow2ClusterKind.Unallocated);

    /// <summary>Bytes of compressed data that may be read: from <see cref="HostOffset"/> to the end of its last sector.</summary>
    public ulong CompressedLength => (ulong)CompressedSectors * SectorSize - (HostOffset % SectorSize);

    /// <summary>Where the last sector of the compressed data starts.</summary>
    public ulong CompressedLastSectorStart => HostOffset - HostOffset % SectorSize + ((ulong)CompressedSectors - 1) * SectorSize;
}
