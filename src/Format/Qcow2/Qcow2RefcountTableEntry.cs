using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>A refcount table entry: bits 9–63 are a refcount block's offset (0: not allocated, every refcount it covers is 0).</summary>
public readonly record struct Qcow2RefcountTableEntry(ulong Raw)
{
    public const int EncodedSize = 8;
    public const ulong OffsetMask = ~0x1FFUL;

    public ulong RefcountBlockOffset => Raw & OffsetMask;
    public bool IsAllocated => RefcountBlockOffset != 0;
    public ulong ReservedBits => Raw & ~OffsetMask;

    public static Qcow2RefcountTableEntry Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Raw);
}
