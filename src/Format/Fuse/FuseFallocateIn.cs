using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_fallocate_in: FALLOCATE's argument (punch hole, zero range, …).</summary>
public readonly record struct FuseFallocateIn(ulong FileHandle, ulong Offset, ulong Length, FallocateMode Mode)
{
    public const int EncodedSize = 32;
    public const int FileHandleOffset = 0;
    public const int OffsetOffset = 8;
    public const int LengthOffset = 16;
    public const int ModeOffset = 24;

    public static FuseFallocateIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[OffsetOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[LengthOffset..]),
        (FallocateMode)BinaryPrimitives.ReadUInt32LittleEndian(source[ModeOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ModeOffset..], (uint)Mode);
    }
}
