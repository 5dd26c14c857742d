using System.Buffers.Binary;

namespace CowDisk.Format.Nbd;

/// <summary>The header of one structured reply chunk; Length bytes of payload follow.</summary>
public readonly record struct NbdChunkHeader(NbdReplyFlags Flags, NbdReplyChunkType Type, ulong Cookie, uint Length)
{
    public const int EncodedSize = 20;
    public const int MagicOffset = 0;
    public const int FlagsOffset = 4;
    public const int TypeOffset = 6;
    public const int CookieOffset = 8;
    public const int LengthOffset = 16;

    public static NbdChunkHeader Read(ReadOnlySpan<byte> source, out uint magic)
    {
        magic = BinaryPrimitives.ReadUInt32BigEndian(source[MagicOffset..]);
        return new((NbdReplyFlags)BinaryPrimitives.ReadUInt16BigEndian(source[FlagsOffset..]),
            (NbdReplyChunkType)BinaryPrimitives.ReadUInt16BigEndian(source[TypeOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[CookieOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[LengthOffset..]));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[MagicOffset..], NbdMagic.StructuredReply);
        BinaryPrimitives.WriteUInt16BigEndian(destination[FlagsOffset..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[TypeOffset..], (ushort)Type);
        BinaryPrimitives.WriteUInt64BigEndian(destination[CookieOffset..], Cookie);
        BinaryPrimitives.WriteUInt32BigEndian(destination[LengthOffset..], Length);
    }
}
