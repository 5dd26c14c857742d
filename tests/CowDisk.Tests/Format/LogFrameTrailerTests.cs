using System.Buffers.Binary;
using CowDisk.Format.Metadata;
using Xunit;

namespace CowDisk.Tests.Format;

public class LogFrameTrailerTests
{
    private static readonly LogFrameTrailer Sample = new(Guid.NewGuid(), 0x0102030405060708, 42, 0xCAFEBABE);

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(8192)]
    public void Round_trips_at_any_buffer_offset(int offset)
    {
        var buffer = new byte[offset + LogFrameTrailer.Size + 3];
        Array.Fill(buffer, (byte)0x5a);
        Sample.Write(buffer.AsSpan(offset));
        Assert.True(LogFrameTrailer.TryRead(buffer.AsSpan(offset), out var read));
        Assert.Equal(Sample, read);
        Assert.All(buffer.AsSpan(0, offset).ToArray(), b => Assert.Equal(0x5a, b));
        Assert.All(buffer.AsSpan(offset + LogFrameTrailer.Size).ToArray(), b => Assert.Equal(0x5a, b));
    }

    [Fact]
    public void Layout_is_big_endian_with_named_offsets_and_a_zero_tail()
    {
        var buffer = new byte[LogFrameTrailer.Size];
        Sample.Write(buffer);
        Assert.Equal("CDLOGFR1"u8.ToArray(), buffer[..8]);
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(LogFrameTrailer.GenerationOffset)));
        Assert.Equal(42UL, BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(LogFrameTrailer.FrameIndexOffset)));
        Assert.Equal(0xCAFEBABEu, BinaryPrimitives.ReadUInt32BigEndian(buffer.AsSpan(LogFrameTrailer.PageChecksumOffset)));
        Assert.True(buffer.AsSpan(LogFrameTrailer.UsedBytes).IndexOfAnyExcept((byte)0) < 0);
        Assert.Equal(LogFrameTrailer.PageSize + LogFrameTrailer.Size, LogFrameTrailer.FrameSize);
    }

    [Fact]
    public void Any_flipped_bit_in_the_used_bytes_is_refused()
    {
        var good = new byte[LogFrameTrailer.Size];
        Sample.Write(good);
        for (int i = 0; i < LogFrameTrailer.UsedBytes; i++)
            for (int bit = 0; bit < 8; bit++)
            {
                var bad = (byte[])good.Clone();
                bad[i] ^= (byte)(1 << bit);
                Assert.False(LogFrameTrailer.TryRead(bad, out _), $"byte {i} bit {bit}");
            }
    }

    [Fact]
    public void Zeros_garbage_and_short_buffers_are_not_trailers()
    {
        Assert.False(LogFrameTrailer.TryRead(new byte[LogFrameTrailer.Size], out _));
        Assert.False(LogFrameTrailer.TryRead(new byte[10], out _));
        var garbage = new byte[LogFrameTrailer.Size];
        new Random(3).NextBytes(garbage);
        "CDLOGFR1"u8.CopyTo(garbage);
        Assert.False(LogFrameTrailer.TryRead(garbage, out _));
    }

    [Fact]
    public void Crc32c_matches_the_standard_check_value() =>
        Assert.Equal(0xE3069283u, LogFrameTrailer.Crc32C("123456789"u8));
}
