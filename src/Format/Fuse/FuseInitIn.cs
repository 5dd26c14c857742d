using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_init_in: the kernel's protocol version and offered capabilities.</summary>
public readonly record struct FuseInitIn(uint Major, uint Minor, uint MaxReadahead, FuseInitFlags Flags, uint Flags2)
{
    /// <summary>Size since protocol 7.36; older kernels send only the first 16 bytes.</summary>
    public const int EncodedSize = 64;
    public const int CompatSize = 16;
    public const int MajorOffset = 0;
    public const int MinorOffset = 4;
    public const int MaxReadaheadOffset = 8;
    public const int FlagsOffset = 12;
    public const int Flags2Offset = 16;

    public static FuseInitIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[MajorOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MinorOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MaxReadaheadOffset..]),
        (FuseInitFlags)BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]),
        source.Length >= Flags2Offset + 4 ? BinaryPrimitives.ReadUInt32LittleEndian(source[Flags2Offset..]) : 0);

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MajorOffset..], Major);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MinorOffset..], Minor);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MaxReadaheadOffset..], MaxReadahead);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], (uint)Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[Flags2Offset..], Flags2);
    }
}
