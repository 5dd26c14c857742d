using System.Buffers.Binary;
using CowDisk.Format.Fuse;
using CowDisk.Format.IoUring;
using FsCheck.Xunit;
using Xunit;

namespace CowDisk.Tests.Format;

/// <summary>
/// io_uring and FUSE-over-io_uring records: sizes and field offsets as linux/io_uring.h and linux/fuse.h have
/// them, lossless round trips, and writes that leave nothing stale in a reused buffer.
/// </summary>
public sealed class IoUringRecordTests
{
    [Fact]
    public void Sizes_and_offsets_match_the_kernel_structs()
    {
        Assert.Equal(120, IoUringParams.EncodedSize);
        Assert.Equal(40, IoUringSqOffsets.EncodedSize);
        Assert.Equal(40, IoUringCqOffsets.EncodedSize);
        Assert.Equal(64, IoUringSqe.Size);
        Assert.Equal(128, IoUringSqe.Size128);
        Assert.Equal(80, IoUringSqe.CommandSize);
        Assert.Equal(32, IoUringSqe.UserDataOffset);
        Assert.Equal(16, IoUringCqe.Size);
        Assert.Equal(288, FuseUringHeader.EncodedSize);
        Assert.Equal(256, FuseUringHeader.EntInOutOffset);
        Assert.Equal(32, FuseUringEntInOut.EncodedSize);
        Assert.Equal(24, FuseUringCommandRequest.EncodedSize);
        Assert.True(FuseUringCommandRequest.EncodedSize <= IoUringSqe.CommandSize);
        Assert.Equal(46, (int)IoUringOpcode.UringCmd);
        Assert.Equal(22, (int)IoUringOpcode.Read);
        Assert.Equal(23, (int)IoUringOpcode.Write);
        Assert.Equal(1UL << 41, (ulong)FuseInitFlags2.OverIoUring << 32);
    }

    [Property]
    public bool Params_round_trip(uint sq, uint cq, uint flags, uint features, uint head, uint tail, uint array, uint cqes)
    {
        var p = new IoUringParams(sq, cq, (IoUringSetupFlags)flags, (IoUringFeatures)features,
            new IoUringSqOffsets(head, tail, 1, 2, 3, 4, array), new IoUringCqOffsets(head, tail, 5, 6, 7, cqes, 8));
        var bytes = new byte[IoUringParams.EncodedSize + 8];
        bytes.AsSpan().Fill(0xEE);
        p.Write(bytes.AsSpan(4));
        return IoUringParams.Read(bytes.AsSpan(4)) == p && bytes[3] == 0xEE && bytes[IoUringParams.EncodedSize + 4] == 0xEE
               && BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4 + IoUringParams.SqOffsetsOffset + 24)) == array
               && BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(4 + IoUringParams.CqOffsetsOffset + 20)) == cqes;
    }

    [Property]
    public bool Sqe_round_trips_and_clears_the_whole_entry(byte opcode, int fd, ulong off, ulong addr, uint len, uint opFlags, ulong userData)
    {
        var sqe = new IoUringSqe((IoUringOpcode)opcode, fd, off, addr, len, opFlags, userData);
        var bytes = new byte[IoUringSqe.Size128];
        bytes.AsSpan().Fill(0xAB);   // a reused slot: the kernel must see no stale command bytes
        sqe.Write(bytes);
        return IoUringSqe.ReadFrom(bytes) == sqe && bytes[IoUringSqe.FlagsOffset] == 0
               && bytes.AsSpan(IoUringSqe.CommandOffset).IndexOfAnyExcept((byte)0) < 0;
    }

    [Fact]
    public void A_uring_command_puts_cmd_op_where_the_kernel_reads_it()
    {
        var bytes = new byte[IoUringSqe.Size128];
        IoUringSqe.UringCommand(7, (uint)FuseUringCommand.CommitAndFetch, 0x1000, 2, 42).Write(bytes);
        new FuseUringCommandRequest(0, 99, 3).Write(bytes.AsSpan(IoUringSqe.CommandOffset));
        Assert.Equal(46, bytes[0]);
        Assert.Equal(7, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)));    // cmd_op: the low half of off
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(12)));   // __pad1
        Assert.Equal(0x1000UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(16)));
        Assert.Equal(42UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(32)));
        Assert.Equal(99UL, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(IoUringSqe.CommandOffset + 8)));
        Assert.Equal((ushort)3, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(IoUringSqe.CommandOffset + 16)));
    }

    [Property]
    public bool Cqe_round_trips(ulong userData, int result, uint flags)
    {
        var cqe = new IoUringCqe(userData, result, flags);
        var bytes = new byte[IoUringCqe.Size];
        cqe.Write(bytes);
        return IoUringCqe.Read(bytes) == cqe;
    }

    [Property]
    public bool Entry_in_out_round_trips_and_clears_its_padding(ulong flags, ulong commitId, uint payloadSize)
    {
        var entry = new FuseUringEntInOut(flags, commitId, payloadSize);
        var bytes = new byte[FuseUringEntInOut.EncodedSize];
        bytes.AsSpan().Fill(0x5A);
        entry.Write(bytes);
        return FuseUringEntInOut.Read(bytes) == entry && bytes.AsSpan(20).IndexOfAnyExcept((byte)0) < 0;
    }

    [Property]
    public bool Command_request_round_trips(ulong flags, ulong commitId, ushort queue)
    {
        var request = new FuseUringCommandRequest(flags, commitId, queue);
        var bytes = new byte[FuseUringCommandRequest.EncodedSize];
        bytes.AsSpan().Fill(0x77);
        request.Write(bytes);
        return FuseUringCommandRequest.Read(bytes) == request && bytes.AsSpan(18).IndexOfAnyExcept((byte)0) < 0;
    }
}
