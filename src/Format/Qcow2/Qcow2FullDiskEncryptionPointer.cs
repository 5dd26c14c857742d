using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>The full disk encryption header extension's data: where the LUKS header is and how long it is.</summary>
public readonly record struct Qcow2FullDiskEncryptionPointer(ulong Offset, ulong Length)
{
    public const int EncodedSize = 16;
    public const int OffsetOffset = 0;
    public const int LengthOffset = 8;

    public static Qcow2FullDiskEncryptionPointer Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < EncodedSize) throw new FormatException($"a qcow2 encryption header pointer needs {EncodedSize} bytes, got {source.Length}");
        return new(BinaryPrimitives.ReadUInt64BigEndian(source[OffsetOffset..]), BinaryPrimitives.ReadUInt64BigEndian(source[LengthOffset..]));
    }

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt64BigEndian(destination[LengthOffset..], Length);
    }
}
