using CowDisk.Format.Image;
using Xunit;

namespace CowDisk.Tests.Format;

public class ImageHeaderTests
{
    private static readonly ImageHeader Sample = new(ImageHeader.CurrentVersion, Guid.NewGuid(), 65536, 10L << 30);

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(4093)]
    public void Round_trips_at_any_buffer_offset(int offset)
    {
        var buffer = new byte[offset + ImageHeader.ReservedBytes];
        Array.Fill(buffer, (byte)0x5a);
        Sample.Write(buffer.AsSpan(offset));
        Assert.Equal(Sample, ImageHeader.Read(buffer.AsSpan(offset)));
        Assert.All(buffer.AsSpan(0, offset).ToArray(), b => Assert.Equal(0x5a, b));   // nothing written before the slice
    }

    [Fact]
    public void Layout_is_big_endian_with_named_offsets()
    {
        var buffer = new byte[ImageHeader.Size];
        Sample.Write(buffer);
        Assert.Equal("CowDisk\0"u8.ToArray(), buffer[..8]);
        Assert.Equal(new byte[] { 0, 0, 0, 4 }, buffer[ImageHeader.VersionOffset..(ImageHeader.VersionOffset + 4)]);
        Assert.Equal(new byte[] { 0, 1, 0, 0 }, buffer[ImageHeader.ClusterSizeOffset..(ImageHeader.ClusterSizeOffset + 4)]);
    }

    [Fact]
    public void Rejects_bad_magic() =>
        Assert.Contains("magic", Assert.Throws<FormatException>(() => ImageHeader.Read(new byte[ImageHeader.Size])).Message);

    [Fact]
    public void Rejects_truncated_header()
    {
        var buffer = new byte[ImageHeader.Size];
        Sample.Write(buffer);
        Assert.Throws<FormatException>(() => ImageHeader.Read(buffer.AsSpan(0, ImageHeader.Size - 1)));
    }

    [Fact]
    public void Rejects_unknown_version()
    {
        var buffer = new byte[ImageHeader.Size];
        (Sample with { Version = 99 }).Write(buffer);
        Assert.Contains("version 99", Assert.Throws<FormatException>(() => ImageHeader.Read(buffer)).Message);
    }

    [Theory]
    [InlineData(ImageHeader.ImageIdOffset)]
    [InlineData(ImageHeader.ClusterSizeOffset + 3)]
    [InlineData(ImageHeader.VirtualSizeOffset + 7)]
    public void Detects_any_flipped_byte(int at)
    {
        var buffer = new byte[ImageHeader.Size];
        Sample.Write(buffer);
        buffer[at] ^= 0x10;
        Assert.Throws<FormatException>(() => ImageHeader.Read(buffer));
    }

    [Theory]
    [InlineData(2048)]
    [InlineData(4 << 20)]
    [InlineData(65535)]
    public void Rejects_bad_cluster_size(int clusterSize)
    {
        var buffer = new byte[ImageHeader.Size];
        (Sample with { ClusterSize = clusterSize }).Write(buffer);
        Assert.Contains("cluster size", Assert.Throws<FormatException>(() => ImageHeader.Read(buffer)).Message);
    }

    [Fact]
    public void Flags_round_trip_and_unknown_bits_are_refused()
    {
        var buffer = new byte[ImageHeader.Size];
        var external = Sample with { Flags = ImageHeaderFlags.ExternalData };
        external.Write(buffer);
        Assert.Equal(ImageHeaderFlags.ExternalData, ImageHeader.Read(buffer).Flags);
        (Sample with { Flags = (ImageHeaderFlags)0x4 }).Write(buffer);   // checksum valid, bit unknown
        Assert.Contains("features this build does not know", Assert.Throws<FormatException>(() => ImageHeader.Read(buffer)).Message);
    }
}
