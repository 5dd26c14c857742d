using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_statfs_out (struct fuse_kstatfs): the STATFS reply.</summary>
public readonly record struct FuseStatFsOut(
    ulong Blocks, ulong FreeBlocks, ulong AvailableBlocks, ulong Files, ulong FreeFiles,
    uint BlockSize, uint MaxNameLength, uint FragmentSize)
{
    public const int EncodedSize = 80;
    public const int BlocksOffset = 0;
    public const int FreeBlocksOffset = 8;
    public const int AvailableBlocksOffset = 16;
    public const int FilesOffset = 24;
    public const int FreeFilesOffset = 32;
    public const int BlockSizeOffset = 40;
    public const int MaxNameLengthOffset = 44;
    public const int FragmentSizeOffset = 48;

    public static FuseStatFsOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[BlocksOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[FreeBlocksOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[AvailableBlocksOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[FilesOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[FreeFilesOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[BlockSizeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MaxNameLengthOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[FragmentSizeOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[BlocksOffset..], Blocks);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FreeBlocksOffset..], FreeBlocks);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AvailableBlocksOffset..], AvailableBlocks);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FilesOffset..], Files);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FreeFilesOffset..], FreeFiles);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BlockSizeOffset..], BlockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MaxNameLengthOffset..], MaxNameLength);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FragmentSizeOffset..], FragmentSize);
    }
}
