using System.Buffers.Binary;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Format;

public class LayerRecordTests
{
    private static readonly Gen<LayerRecord> Records =
        from block in Gen.Choose(0, 511)
        from under in Gen.Choose(0, (int)MappingEntry.MaxEpoch - 1)
        from above in Gen.Choose(1, 1000)
        from mask in ArbMap.Default.GeneratorFor<ulong>().Where(m => m != 0)
        from cluster in Gen.Choose(1, int.MaxValue)
        select new LayerRecord(block, (uint)Math.Min(MappingEntry.MaxEpoch, (long)under + above), mask, (uint)under, cluster);

    [Fact]
    public void Round_trips_at_any_buffer_offset() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Records.ToArbitrary(), Gen.Choose(0, 40).ToArbitrary(), (rec, offset) =>
        {
            var buffer = new byte[offset + LayerRecord.Size + 3];
            rec.Write(buffer.AsSpan(offset));
            return LayerRecord.Read(buffer.AsSpan(offset)) == rec;
        }));

    [Fact]
    public void Layout_is_little_endian_with_named_offsets()
    {
        var buffer = new byte[LayerRecord.Size];
        new LayerRecord(7, 5, 0x0102030405060708, 2, 0x1122334455).Write(buffer);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(LayerRecord.BlockOffset)));
        Assert.Equal(5u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(LayerRecord.TopBirthOffset)));
        Assert.Equal(0x0102030405060708UL, BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(LayerRecord.MaskOffset)));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(LayerRecord.UnderBirthOffset)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(LayerRecord.ReservedOffset)));
        Assert.Equal(0x1122334455UL, BinaryPrimitives.ReadUInt64LittleEndian(buffer.AsSpan(LayerRecord.UnderClusterOffset)));
    }

    [Theory]
    [InlineData("empty mask")]
    [InlineData("under born with the top")]
    [InlineData("under born after the top")]
    [InlineData("top epoch out of range")]
    [InlineData("cluster 0")]
    [InlineData("cluster out of range")]
    [InlineData("truncated")]
    public void Rejects_values_no_writer_produces(string damage)
    {
        var buffer = new byte[LayerRecord.Size];
        new LayerRecord(1, 5, 3, 2, 9).Write(buffer);
        switch (damage)
        {
            case "empty mask": BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(LayerRecord.MaskOffset), 0); break;
            case "under born with the top": BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(LayerRecord.UnderBirthOffset), 5); break;
            case "under born after the top": BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(LayerRecord.UnderBirthOffset), 6); break;
            case "top epoch out of range": BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(LayerRecord.TopBirthOffset), MappingEntry.MaxEpoch + 1); break;
            case "cluster 0": BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(LayerRecord.UnderClusterOffset), 0); break;
            case "cluster out of range": BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(LayerRecord.UnderClusterOffset), (ulong)MappingEntry.MaxPhysicalCluster + 1); break;
            case "truncated": buffer = buffer[..^1]; break;
        }
        Assert.Throws<FormatException>(() => LayerRecord.Read(buffer));
    }
}

public class SubclusterGeometryTests
{
    [Theory]
    [InlineData(4096, 12, 1)]
    [InlineData(8192, 12, 2)]
    [InlineData(65536, 12, 16)]
    [InlineData(256 * 1024, 12, 64)]
    [InlineData(512 * 1024, 13, 64)]
    [InlineData(2 << 20, 15, 64)]
    public void Subclusters_are_4k_or_a_64th_of_the_cluster(int clusterSize, int shift, int perBlock)
    {
        var g = new ClusterGeometry(clusterSize, 10L * clusterSize);
        Assert.Equal(shift, g.SubclusterShift);
        Assert.Equal(perBlock, g.SubclustersPerBlock);
        Assert.Equal(perBlock >= 2, g.HasSubclusters);
        Assert.Equal(perBlock == 64 ? ulong.MaxValue : (1UL << perBlock) - 1, g.FullMask(3));
    }

    [Fact]
    public void A_short_last_block_has_only_the_subclusters_it_covers()
    {
        var g = new ClusterGeometry(65536, 2 * 65536 + 4097);
        Assert.Equal(0b11UL, g.FullMask(2));
        Assert.Equal(0xffffUL, g.FullMask(1));
    }

    /// <summary>Against a bit-by-bit model: the mask of a byte range, and the runs a mask splits a range into.</summary>
    [Fact]
    public void Masks_and_runs_match_a_per_byte_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(400), Prop.ForAll(
            Gen.Elements(8192, 16384, 65536, 1 << 19, 2 << 20).ToArbitrary(), ArbMap.Default.GeneratorFor<ulong>().ToArbitrary(),
            Gen.Choose(0, int.MaxValue).ToArbitrary(), (cs, mask, seed) =>
            {
                var g = new ClusterGeometry(cs, 4L * cs);
                var rng = new Random(seed);
                int start = rng.Next(cs), length = 1 + rng.Next(cs - start);
                ulong expected = 0;
                for (int b = start; b < start + length; b++) expected |= 1UL << (b >> g.SubclusterShift);
                if (g.SubclusterMask(start, length) != expected) return false;
                for (int pos = start; pos < start + length;)
                {
                    int run = g.SubclusterRun(mask, pos, start + length - pos, out bool inMask);
                    if (run <= 0) return false;
                    for (int b = pos; b < pos + run; b++)
                        if (((mask >> (b >> g.SubclusterShift) & 1) != 0) != inMask) return false;
                    int next = pos + run;
                    if (next < start + length && ((mask >> (next >> g.SubclusterShift) & 1) != 0) == inMask) return false;   // runs are maximal
                    pos = next;
                }
                return true;
            }));
}
