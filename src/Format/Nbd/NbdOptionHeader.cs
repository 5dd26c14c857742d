using System.Buffers.Binary;

namespace CowDisk.Format.Nbd;

/// <summary>The header of an option the client sends; Length bytes of option data follow.</summary>
public readonly record struct NbdOptionHeader(ulong Magic, NbdOption Option, uint Length)
{
    public const int EncodedSize = 16;
    public const int MagicOffset = 0;
    public const int OptionOffset = 8;
    public const int LengthOffset = 12;

    public static NbdOptionHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64BigEndian(source[MagicOffset..]),
        (NbdOption)BinaryPrimitives.ReadUInt32BigEndian(source[OptionOffset..]),
        BinaryPrimitives.ReadUInt32BigEndian(source[LengthOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[OptionOffset..], (uint)Option);
        BinaryPrimitives.WriteUInt32BigEndian(destination[LengthOffset..], Length);
    }
}
