using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>FUSE_IO_URING_CMD_*: a URING_CMD's cmd_op on /dev/fuse.</summary>
public enum FuseUringCommand : uint
{
    /// <summary>Gives the kernel one entry (its header and payload buffers) for a queue; completes with its first request.</summary>
    Register = 1,
    /// <summary>Answers the request an entry holds and re-arms the entry; completes with its next request.</summary>
    CommitAndFetch = 2,
}

/// <summary>
/// struct fuse_uring_cmd_req (24 bytes, at the start of the SQE's 80-byte command area): which queue (one per
/// possible CPU) and, for a commit, which request (its unique) is answered.
/// </summary>
public readonly record struct FuseUringCommandRequest(ulong Flags, ulong CommitId, ushort QueueId)
{
    public const int EncodedSize = 24;
    public const int FlagsOffset = 0;
    public const int CommitIdOffset = 8;
    public const int QueueIdOffset = 16;

    public static FuseUringCommandRequest Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[FlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[CommitIdOffset..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[QueueIdOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[CommitIdOffset..], CommitId);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[QueueIdOffset..], QueueId);
    }
}
