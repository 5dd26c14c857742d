using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_open_out: the OPEN/OPENDIR reply — our file handle and FOPEN_* flags.</summary>
public readonly record struct FuseOpenOut(ulong FileHandle, FuseOpenReplyFlags Flags)
{
    public const int EncodedSize = 16;
    public const int FileHandleOffset = 0;
    public const int FlagsOffset = 8;

    public static FuseOpenOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        (FuseOpenReplyFlags)BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], (uint)Flags);
    }
}
