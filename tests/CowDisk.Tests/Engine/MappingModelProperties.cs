using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Engine;

/// <summary>Model-based properties of mapping consistency (the engine against a byte array).</summary>
public class MappingModelProperties
{
    /// <summary>Cases per property; COWDISK_PROPERTY_TESTS raises it for a soak run.</summary>
    private static int Cases(int normal) =>
        int.TryParse(Environment.GetEnvironmentVariable("COWDISK_PROPERTY_TESTS"), out int n) && n > 0 ? n : normal;

    [Fact]
    public void Random_operation_sequences_match_the_model_with_the_mapping_cache() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(60)), Prop.ForAll(ModelScenario.Generator(mappingCache: true).ToArbitrary(), s => ModelRunner.Run(s)));

    [Fact]
    public void Random_operation_sequences_match_the_model_without_the_mapping_cache() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(40)), Prop.ForAll(ModelScenario.Generator(mappingCache: false).ToArbitrary(), s => ModelRunner.Run(s)));

    [Fact]
    public void With_the_data_file_in_direct_io_random_sequences_match_the_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(30)), Prop.ForAll(ModelScenario.Generator(mappingCache: true).ToArbitrary(), s => ModelRunner.Run(s, directIo: true)));

    /// <summary>Whole sectors, from aligned buffers and others: the data file's runs of one request go to the file together (io_uring).</summary>
    [Fact]
    public void With_direct_io_requests_over_many_runs_in_whole_sectors_match_the_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(30)), Prop.ForAll(ModelScenario.Generator(mappingCache: true, sectorAligned: true).ToArbitrary(), s => ModelRunner.Run(s, directIo: true)));

    [Fact]
    public void Operations_at_and_across_map_chunk_edges_match_the_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(25)), Prop.ForAll(ModelScenario.ChunkEdgeGenerator().ToArbitrary(), s => ModelRunner.Run(s)));

    [Fact]
    public void Layered_blocks_after_snapshots_match_the_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(50)), Prop.ForAll(ModelScenario.LayerGenerator().ToArbitrary(), s => ModelRunner.Run(s)));

    /// <summary>A discard that starts in a chunk the cache never saw and ends in one it holds: no stale entries.</summary>
    [Fact]
    public void A_discard_from_an_uncached_chunk_into_a_cached_one_invalidates_it()
    {
        const int cs = 4096;
        long edge = 4096L * cs;
        ModelRunner.Run(new ModelScenario(cs, 3 * edge, BaseKind.None, 0, new[]
        {
            new Op(OpKind.Write, edge, 8 * cs, 3, 0),
            new Op(OpKind.Read, edge, 8 * cs, 0, 0),
            new Op(OpKind.Discard, edge - 4 * cs, 10 * cs, 0, 0),
            new Op(OpKind.Read, edge, 8 * cs, 0, 0),
        }, MappingCache: true));
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(65536)]
    [InlineData(2 << 20)]
    public void Sweep_cluster_sizes_with_an_odd_disk_size(int clusterSize)
    {
        long size = 3L * clusterSize + 4097;
        var ops = new List<Op>();
        for (long off = 0; off < size; off += clusterSize / 3 + 1)
            ops.Add(new Op(OpKind.Write, off, (int)Math.Min(clusterSize / 2 + 5, size - off), (byte)(off % 251 + 1), 3));
        ops.Add(new Op(OpKind.Reopen, 0, 0, 0, 0));
        ops.Add(new Op(OpKind.Discard, clusterSize - 1, clusterSize + 2, 0, 0));
        ops.Add(new Op(OpKind.Write, size - 10, 10, 9, 1));
        foreach (var baseKind in new[] { BaseKind.None, BaseKind.Raw, BaseKind.CowDisk })
            ModelRunner.Run(new ModelScenario(clusterSize, size, baseKind, size - 777, ops.ToArray(), true));
    }
}
