using System.Buffers.Binary;

namespace CowDisk.Format.IoUring;

/// <summary>struct io_uring_cqe (16 bytes): which submission completed (its user data) and its result (or a negated errno).</summary>
public readonly record struct IoUringCqe(ulong UserData, int Result, uint Flags)
{
    public const int Size = 16;
    public const int UserDataOffset = 0;
    public const int ResultOffset = 8;
    public const int FlagsOffset = 12;

    public static IoUringCqe Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt64LittleEndian(source[UserDataOffset..]),
        BinaryPrimitives.ReadInt32LittleEndian(source[ResultOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UserDataOffset..], UserData);
        BinaryPrimitives.WriteInt32LittleEndian(destination[ResultOffset..], Result);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], Flags);
    }
}
