using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// An L1 table entry: bits 9–55 are the offset of an L2 table (cluster aligned; 0 means the L2 table and every
/// cluster it would describe are unallocated), bit 63 says its refcount is exactly one. Other bits are reserved.
/// </summary>
public readonly record struct Qcow2L1Entry(ulong Raw)
{
    public const int EncodedSize = 8;
    /// <summary>Bits 9–55.</summary>
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    public const ulong CopiedFlag = 1UL << 63;
    public const ulong ReservedMask = ~(OffsetMask | CopiedFlag);

    public static Qcow2L1Entry Create(ulong l2TableOffset, bool copied)
    {
        if ((l2TableOffset & ~OffsetMask) != 0) throw new ArgumentOutOfRangeException(nameof(l2TableOffset), $"L2 table offset 0x{l2TableOffset:x} does not fit bits 9-55");
        return new(l2TableOffset | (copied ? CopiedFlag : 0));
    }

    /// <summary>The L2 table's host offset; 0 when unallocated.</summary>
    public ulong L2TableOffset => Raw & OffsetMask;
    public bool IsAllocated => L2TableOffset != 0;
    public bool Copied => (Raw & CopiedFlag) != 0;
    public ulong ReservedBits => Raw & ReservedMask;

    public static Qcow2L1Entry Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Raw);
}
