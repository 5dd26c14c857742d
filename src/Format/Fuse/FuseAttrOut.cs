using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_attr_out: the GETATTR and SETATTR reply.</summary>
public readonly record struct FuseAttrOut(ulong AttrValidSeconds, uint AttrValidNanoseconds, FuseAttr Attr)
{
    public const int EncodedSize = 16 + FuseAttr.EncodedSize;
    public const int AttrValidOffset = 0;
    public const int AttrValidNanosecondsOffset = 8;
    public const int AttrOffset = 16;

    public static FuseAttrOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[AttrValidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[AttrValidNanosecondsOffset..]),
        FuseAttr.Read(source[AttrOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AttrValidOffset..], AttrValidSeconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[AttrValidNanosecondsOffset..], AttrValidNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[(AttrValidNanosecondsOffset + 4)..], 0);
        Attr.Write(destination[AttrOffset..]);
    }
}
