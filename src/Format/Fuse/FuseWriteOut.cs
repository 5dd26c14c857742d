using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_write_out: the WRITE reply — how many bytes were written.</summary>
public readonly record struct FuseWriteOut(uint Length)
{
    public const int EncodedSize = 8;
    public const int LengthOffset = 0;

    public static FuseWriteOut Read(ReadOnlySpan<byte> source) =>
        new(BinaryPrimitives.ReadUInt32LittleEndian(source[LengthOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[(LengthOffset + 4)..], 0);
    }
}
