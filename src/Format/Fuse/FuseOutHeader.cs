using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_out_header: the 16 bytes in front of every reply; Error is 0 or a negated errno.</summary>
public readonly record struct FuseOutHeader(uint Length, int Error, ulong Unique)
{
    public const int EncodedSize = 16;
    public const int LengthOffset = 0;
    public const int ErrorOffset = 4;
    public const int UniqueOffset = 8;

    public static FuseOutHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[LengthOffset..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[ErrorOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[UniqueOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteInt32LittleEndian(destination[ErrorOffset..], Error);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UniqueOffset..], Unique);
    }
}
