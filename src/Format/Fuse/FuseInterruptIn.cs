using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_interrupt_in: names the request (by unique id) the kernel wants interrupted.</summary>
public readonly record struct FuseInterruptIn(ulong Unique)
{
    public const int EncodedSize = 8;
    public const int UniqueOffset = 0;

    public static FuseInterruptIn Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(source[UniqueOffset..]));

    public void Write(Span<byte> destination) =>
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UniqueOffset..], Unique);
}
