using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_getattr_in: GETATTR's argument; FileHandle is meaningful when Flags has FhValid.</summary>
public readonly record struct FuseGetAttrIn(uint Flags, ulong FileHandle)
{
    public const int EncodedSize = 16;
    public const int FlagsOffset = 0;
    public const int FileHandleOffset = 8;
    /// <summary>FUSE_GETATTR_FH.</summary>
    public const uint FhValid = 1;

    public static FuseGetAttrIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
    }
}
