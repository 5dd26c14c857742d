using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>
/// struct fuse_uring_ent_in_out (32 bytes, the end of a ring entry's header): the kernel says which request the
/// entry holds (CommitId, the request's unique) and how much of the payload buffer it filled; the reply says how
/// much of the payload buffer holds the answer.
/// </summary>
public readonly record struct FuseUringEntInOut(ulong Flags, ulong CommitId, uint PayloadSize)
{
    public const int EncodedSize = 32;
    public const int FlagsOffset = 0;
    public const int CommitIdOffset = 8;
    public const int PayloadSizeOffset = 16;

    public static FuseUringEntInOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[CommitIdOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[PayloadSizeOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[CommitIdOffset..], CommitId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[PayloadSizeOffset..], PayloadSize);
    }
}
