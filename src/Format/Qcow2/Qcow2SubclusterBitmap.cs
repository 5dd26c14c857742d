using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// The second 64 bits of an extended L2 entry: bits 0–31 say which of the cluster's 32 subclusters are allocated,
/// bits 32–63 which read as zeros (bit x for subcluster x, and 32 + x). Reserved (zero) for compressed clusters.
/// </summary>
public readonly record struct Qcow2SubclusterBitmap(ulong Raw)
{
    public const int EncodedSize = 8;
    public const int SubclustersPerCluster = 32;

    public static Qcow2SubclusterBitmap Create(uint allocated, uint zero) => new(allocated | ((ulong)zero << 32));

    public uint AllocatedMask => (uint)Raw;
    public uint ZeroMask => (uint)(Raw >> 32);

    public Qcow2SubclusterState State(int subcluster)
    {
        bool allocated = (AllocatedMask >> subcluster & 1) != 0, zero = (ZeroMask >> subcluster & 1) != 0;
        return allocated ? (zero ? Qcow2SubclusterState.Invalid : Qcow2SubclusterState.Allocated)
                         : (zero ? Qcow2SubclusterState.Zero : Qcow2SubclusterState.Unallocated);
    }

    /// <summary>True if some subcluster has both bits set.</summary>
    public bool HasInvalid => (AllocatedMask & ZeroMask) != 0;

    public static Qcow2SubclusterBitmap Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Raw);
}
