using System.Buffers.Binary;

namespace CowDisk.Format.Nbd;

/// <summary>The simple reply: error and cookie (a successful READ's data follows it).</summary>
public readonly record struct NbdSimpleReply(NbdError Error, ulong Cookie)
{
    public const int EncodedSize = 16;
    public const int MagicOffset = 0;
    public const int ErrorOffset = 4;
    public const int CookieOffset = 8;

    public static NbdSimpleReply Read(ReadOnlySpan<byte> source, out uint magic)
    {
        magic = BinaryPrimitives.ReadUInt32BigEndian(source[MagicOffset..]);
        return new((NbdError)BinaryPrimitives.ReadUInt32BigEndian(source[ErrorOffset..]), BinaryPrimitives.ReadUInt64BigEndian(source[CookieOffset..]));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[MagicOffset..], NbdMagic.SimpleReply);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ErrorOffset..], (uint)Error);
        BinaryPrimitives.WriteUInt64BigEndian(destination[CookieOffset..], Cookie);
    }
}
