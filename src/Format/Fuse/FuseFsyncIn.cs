using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_fsync_in: FSYNC and FSYNCDIR's argument.</summary>
public readonly record struct FuseFsyncIn(ulong FileHandle, uint FsyncFlags)
{
    public const int EncodedSize = 16;
    public const int FileHandleOffset = 0;
    public const int FsyncFlagsOffset = 8;
    /// <summary>FUSE_FSYNC_FDATASYNC: only data (and the metadata needed to read it) must be durable.</summary>
    public const uint DataOnly = 1;

    public static FuseFsyncIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[FsyncFlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FsyncFlagsOffset..], FsyncFlags);
    }
}
