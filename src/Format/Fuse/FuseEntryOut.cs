using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_entry_out: the LOOKUP reply — node id, cache lifetimes and the attributes.</summary>
public readonly record struct FuseEntryOut(
    ulong NodeId, ulong Generation, ulong EntryValidSeconds, ulong AttrValidSeconds,
    uint EntryValidNanoseconds, uint AttrValidNanoseconds, FuseAttr Attr)
{
    public const int EncodedSize = 40 + FuseAttr.EncodedSize;
    public const int NodeIdOffset = 0;
    public const int GenerationOffset = 8;
    public const int EntryValidOffset = 16;
    public const int AttrValidOffset = 24;
    public const int EntryValidNanosecondsOffset = 32;
    public const int AttrValidNanosecondsOffset = 36;
    public const int AttrOffset = 40;

    public static FuseEntryOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[NodeIdOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[GenerationOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[EntryValidOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[AttrValidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[EntryValidNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[AttrValidNanosecondsOffset..]),
        FuseAttr.Read(source[AttrOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination[NodeIdOffset..], NodeId);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[GenerationOffset..], Generation);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[EntryValidOffset..], EntryValidSeconds);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AttrValidOffset..], AttrValidSeconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[EntryValidNanosecondsOffset..], EntryValidNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[AttrValidNanosecondsOffset..], AttrValidNanoseconds);
        Attr.Write(destination[AttrOffset..]);
    }
}
