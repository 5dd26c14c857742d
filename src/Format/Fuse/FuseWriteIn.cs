using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_write_in: WRITE's argument; the data follows it. OpenFlags carry O_SYNC/O_DSYNC of this write.</summary>
public readonly record struct FuseWriteIn(ulong FileHandle, ulong Offset, uint Length, uint WriteFlags, ulong LockOwner, uint OpenFlags)
{
    public const int EncodedSize = 40;
    public const int FileHandleOffset = 0;
    public const int OffsetOffset = 8;
    public const int LengthOffset = 16;
    public const int WriteFlagsOffset = 20;
    public const int LockOwnerOffset = 24;
    public const int OpenFlagsOffset = 32;

    /// <summary>FUSE_WRITE_CACHE: a delayed write from the page cache.</summary>
    public const uint WriteFlagCache = 1;

    public static FuseWriteIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[OffsetOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[LengthOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[WriteFlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[LockOwnerOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[OpenFlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[OffsetOffset..], Offset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[WriteFlagsOffset..], WriteFlags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[LockOwnerOffset..], LockOwner);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[OpenFlagsOffset..], OpenFlags);
    }
}
