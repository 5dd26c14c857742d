using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_attr: an inode's attributes as the kernel caches them (88 bytes).</summary>
public readonly record struct FuseAttr(
    ulong Inode, ulong Size, ulong Blocks, ulong AccessTime, ulong ModifyTime, ulong ChangeTime,
    uint AccessTimeNanoseconds, uint ModifyTimeNanoseconds, uint ChangeTimeNanoseconds,
    uint Mode, uint LinkCount, uint Uid, uint Gid, uint RDevice, uint BlockSize, uint Flags)
{
    public const int EncodedSize = 88;
    public const int InodeOffset = 0;
    public const int SizeOffset = 8;
    public const int BlocksOffset = 16;
    public const int AccessTimeOffset = 24;
    public const int ModifyTimeOffset = 32;
    public const int ChangeTimeOffset = 40;
    public const int AccessTimeNanosecondsOffset = 48;
    public const int ModifyTimeNanosecondsOffset = 52;
    public const int ChangeTimeNanosecondsOffset = 56;
    public const int ModeOffset = 60;
    public const int LinkCountOffset = 64;
    public const int UidOffset = 68;
    public const int GidOffset = 72;
    public const int RDeviceOffset = 76;
    public const int BlockSizeOffset = 80;
    public const int FlagsOffset = 84;

    /// <summary>File type bits of Mode (S_IFDIR, S_IFREG).</summary>
    public const uint DirectoryType = 0x4000;
    public const uint RegularFileType = 0x8000;

    public static FuseAttr Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[InodeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[SizeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[BlocksOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[AccessTimeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[ModifyTimeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[ChangeTimeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[AccessTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ModifyTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ChangeTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ModeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[LinkCountOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[UidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[GidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[RDeviceOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[BlockSizeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination[InodeOffset..], Inode);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[SizeOffset..], Size);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[BlocksOffset..], Blocks);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AccessTimeOffset..], AccessTime);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[ModifyTimeOffset..], ModifyTime);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[ChangeTimeOffset..], ChangeTime);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[AccessTimeNanosecondsOffset..], AccessTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ModifyTimeNanosecondsOffset..], ModifyTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ChangeTimeNanosecondsOffset..], ChangeTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ModeOffset..], Mode);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LinkCountOffset..], LinkCount);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[UidOffset..], Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[GidOffset..], Gid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[RDeviceOffset..], RDevice);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BlockSizeOffset..], BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], Flags);
    }
}
