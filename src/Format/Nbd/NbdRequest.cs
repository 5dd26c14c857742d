using System.Buffers.Binary;

namespace CowDisk.Format.Nbd;

/// <summary>A transmission-phase request header (a WRITE's payload follows it).</summary>
public readonly record struct NbdRequest(uint Magic, NbdCommandFlags Flags, NbdCommand Command, ulong Cookie, ulong Offset, uint Length)
{
    public const int EncodedSize = 28;
    public const int MagicOffset = 0;
    public const int FlagsOffset = 4;
    public const int CommandOffset = 6;
    public const int CookieOffset = 8;
    public const int OffsetOffset = 16;
    public const int LengthOffset = 24;

    public static NbdRequest Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32BigEndian(source[MagicOffset..]),
        (NbdCommandFlags)BinaryPrimitives.ReadUInt16BigEndian(source[FlagsOffset..]),
        (NbdCommand)BinaryPrimitives.ReadUInt16BigEndian(source[CommandOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(source[CookieOffset..]),
        BinaryPrimitives.ReadUInt64BigEndian(source[OffsetOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[LengthOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt16BigEndian(destination[FlagsOffset..], (ushort)Flags);
        BinaryPrimitives.WriteUInt16BigEndian(destination[CommandOffset..], (ushort)Command);
        BinaryPrimitives.WriteUInt64BigEndian(destination[CookieOffset..], Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(destination[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[LengthOffset..], Length);
    }
}
