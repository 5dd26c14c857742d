using System.Buffers.Binary;

namespace CowDisk.Format.Nbd;

/// <summary>The header of the server's reply to an option; Length bytes of reply data follow.</summary>
public readonly record struct NbdOptionReplyHeader(NbdOption Option, NbdOptionReplyType Type, uint Length)
{
    public const int EncodedSize = 20;
    public const int MagicOffset = 0;
    public const int OptionOffset = 8;
    public const int TypeOffset = 12;
    public const int LengthOffset = 16;

    public static NbdOptionReplyHeader Read(ReadOnlySpan<byte> source, out ulong magic)
    {
        magic = BinaryPrimitives.ReadUInt64BigEndian(source[MagicOffset..]);
        return new((NbdOption)BinaryPrimitives.ReadUInt32BigEndian(source[OptionOffset..]),
            (NbdOptionReplyType)BinaryPrimitives.ReadUInt32BigEndian(source[TypeOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[LengthOffset..]));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination[MagicOffset..], NbdMagic.OptionReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[OptionOffset..], (uint)Option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[TypeOffset..], (uint)Type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[LengthOffset..], Length);
    }
}
