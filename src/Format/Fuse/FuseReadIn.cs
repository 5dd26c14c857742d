using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_read_in: READ and READDIR's argument.</summary>
public readonly record struct FuseReadIn(ulong FileHandle, ulong Offset, uint Length, uint ReadFlags, ulong LockOwner, uint OpenFlags)
{
    public const int EncodedSize = 40;
    public const int FileHandleOffset = 0;
    public const int OffsetOffset = 8;
    public const int LengthOffset = 16;
    public const int ReadFlagsOffset = 20;
    public const int LockOwnerOffset = 24;
    public const int OpenFlagsOffset = 32;

    public static FuseReadIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[OffsetOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[LengthOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ReadFlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[LockOwnerOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[OpenFlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ReadFlagsOffset..], ReadFlags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[LockOwnerOffset..], LockOwner);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[OpenFlagsOffset..], OpenFlags);
    }
}
