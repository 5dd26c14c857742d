using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// The 8-byte head of a header extension (type, length of its data); the data follows, padded with zeros to the
/// next multiple of 8. Extensions follow the header directly and end with an <see cref="Qcow2HeaderExtensionType.End"/> one.
/// </summary>
public readonly record struct Qcow2HeaderExtension(Qcow2HeaderExtensionType Type, uint Length)
{
    public const int EncodedSize = 8;
    public const int TypeOffset = 0;
    public const int LengthOffset = 4;
    public const int Alignment = 8;

    /// <summary>Bytes from this extension's start to the next one's: the head, the data and its padding.</summary>
    public ulong TotalLength => EncodedSize + PaddedLength(Length);

    /// <summary>A data length rounded up to the next multiple of 8.</summary>
    public static ulong PaddedLength(uint length) => ((ulong)length + Alignment - 1) & ~(ulong)(Alignment - 1);

    public static Qcow2HeaderExtension Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < EncodedSize) throw new FormatException($"a qcow2 header extension needs {EncodedSize} bytes, got {source.Length}");
        return new((Qcow2HeaderExtensionType)BinaryPrimitives.ReadUInt32BigEndian(source[TypeOffset..]),
                   BinaryPrimitives.ReadUInt32BigEndian(source[LengthOffset..]));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32BigEndian(destination[TypeOffset..], (uint)Type);
        BinaryPrimitives.WriteUInt32BigEndian(destination[LengthOffset..], Length);
    }
}
