using System.Buffers.Binary;
using CowDisk.Format.Fuse;
using FsCheck.Xunit;
using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>The FUSE records: sizes as linux/fuse.h has them, fields where the kernel looks, lossless round trips.</summary>
public sealed class FuseRecordTests
{
    [Fact]
    public void Encoded_sizes_match_the_kernel_structs()
    {
        Assert.Equal(40, FuseInHeader.EncodedSize);
        Assert.Equal(16, FuseOutHeader.EncodedSize);
        Assert.Equal(64, FuseInitOut.EncodedSize);
        Assert.Equal(88, FuseAttr.EncodedSize);
        Assert.Equal(128, FuseEntryOut.EncodedSize);
        Assert.Equal(104, FuseAttrOut.EncodedSize);
        Assert.Equal(88, FuseSetAttrIn.EncodedSize);
        Assert.Equal(40, FuseWriteIn.EncodedSize);
        Assert.Equal(80, FuseStatFsOut.EncodedSize);
        Assert.Equal(32, FuseDirent.EncodedSize(4)); // 24 + "disk", padded to 8
    }

    [Property]
    public bool In_header_round_trips(uint length, uint opcode, ulong unique, ulong node, uint uid, uint gid, uint pid, ushort ext)
    {
        var header = new FuseInHeader(length, (FuseOpcode)opcode, unique, node, uid, gid, pid, ext);
        var bytes = new byte[FuseInHeader.EncodedSize];
        header.Write(bytes);
        return FuseInHeader.Read(bytes) == header && BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(8)) == unique;
    }

    [Property]
    public bool Write_in_round_trips(ulong handle, ulong offset, uint length, uint writeFlags, ulong owner, uint openFlags)
    {
        var request = new FuseWriteIn(handle, offset, length, writeFlags, owner, openFlags);
        var bytes = new byte[FuseWriteIn.EncodedSize];
        request.Write(bytes);
        return FuseWriteIn.Read(bytes) == request && BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16)) == length;
    }

    [Fact]
    public void Init_out_puts_max_write_and_max_pages_where_the_kernel_reads_them()
    {
        var reply = new FuseInitOut(7, 38, 131072, FuseInitFlags.MaxPages | FuseInitFlags.AsyncDio, 128, 96, 1 << 20, 1, 256, 0);
        var bytes = new byte[FuseInitOut.EncodedSize];
        reply.Write(bytes);
        Assert.Equal(1u << 20, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(20)));
        Assert.Equal((ushort)256, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(28)));
        Assert.Equal((1u << 22) | (1u << 15), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(12)));
        Assert.Equal(reply, FuseInitOut.Read(bytes));
    }

    [Fact]
    public void Dirent_is_padded_and_names_the_next_offset()
    {
        var bytes = new byte[64];
        bytes.AsSpan().Fill(0xFF);
        int used = FuseDirent.Write(bytes, 2, 3, FuseDirent.RegularFileType, "disk"u8);
        Assert.Equal(32, used);
        Assert.Equal(3ul, BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(8)));
        Assert.Equal(4u, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(16)));
        Assert.Equal("disk"u8.ToArray(), bytes[24..28]);
        Assert.All(bytes[28..32], b => Assert.Equal(0, b));
    }
}
