using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_open_in: OPEN and OPENDIR's argument; Flags are the open(2) flags (O_ACCMODE, O_SYNC, …).</summary>
public readonly record struct FuseOpenIn(uint Flags, uint OpenFlags)
{
    public const int EncodedSize = 8;
    public const int FlagsOffset = 0;
    public const int OpenFlagsOffset = 4;

    public static FuseOpenIn Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[OpenFlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[OpenFlagsOffset..], OpenFlags);
    }
}
