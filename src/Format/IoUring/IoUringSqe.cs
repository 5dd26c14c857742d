using System.Buffers.Binary;

namespace CowDisk.Format.IoUring;

/// <summary>
/// struct io_uring_sqe: 64 bytes, or 128 with IORING_SETUP_SQE128, whose last 80 bytes (from
/// <see cref="CommandOffset"/>) are a URING_CMD's command. Only the fields CowDisk fills are named.
/// </summary>
public readonly record struct IoUringSqe(
    IoUringOpcode Opcode, int Fd, ulong Offset, ulong Address, uint Length, uint OpFlags, ulong UserData)
{
    public const int Size = 64;
    public const int Size128 = 128;
    public const int OpcodeOffset = 0;
    public const int FlagsOffset = 1;
    public const int FdOffset = 4;
    /// <summary>off / addr2, or for URING_CMD: cmd_op (u32) and a pad.</summary>
    public const int OffOffset = 8;
    public const int AddrOffset = 16;
    public const int LenOffset = 24;
    public const int OpFlagsOffset = 28;
    public const int UserDataOffset = 32;
    /// <summary>Start of the 80-byte command area of a 128-byte URING_CMD entry.</summary>
    public const int CommandOffset = 48;
    public const int CommandSize = Size128 - CommandOffset;

    /// <summary>A URING_CMD: cmd_op in the off field, the command bytes written separately at <see cref="CommandOffset"/>.</summary>
    public static IoUringSqe UringCommand(int fd, uint commandOp, ulong address, uint length, ulong userData) =>
        new(IoUringOpcode.UringCmd, fd, commandOp, address, length, 0, userData);

    public static IoUringSqe Read(int fd, ulong buffer, uint length, ulong offset, ulong userData) =>
        new(IoUringOpcode.Read, fd, offset, buffer, length, 0, userData);

    public static IoUringSqe Write(int fd, ulong buffer, uint length, ulong offset, ulong userData) =>
        new(IoUringOpcode.Write, fd, offset, buffer, length, 0, userData);

    public static IoUringSqe ReadFrom(ReadOnlySpan<byte> source) => new(
        (IoUringOpcode)source[OpcodeOffset],
        BinaryPrimitives.ReadInt32LittleEndian(source[FdOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[OffOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[AddrOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[LenOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[OpFlagsOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[UserDataOffset..]));

    /// <summary>Writes the entry; every byte up to destination's length (64 or 128) not named here is zeroed.</summary>
    public void Write(Span<byte> destination)
    {
        destination.Clear();
        destination[OpcodeOffset] = (byte)Opcode;
        BinaryPrimitives.WriteInt32LittleEndian(destination[FdOffset..], Fd);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[OffOffset..], Offset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AddrOffset..], Address);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LenOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[OpFlagsOffset..], OpFlags);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UserDataOffset..], UserData);
    }
}
