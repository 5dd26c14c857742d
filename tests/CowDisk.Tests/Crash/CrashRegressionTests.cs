using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Crash;

/// <summary>
/// Short workloads that reach a known hazard, with power cut before every storage operation in turn. Each
/// one failed under the mutation it names (checked by breaking the code on purpose).
/// </summary>
[Collection(PowerLossCollection.Name)]
public class CrashRegressionTests
{
    private static Op W(long offset, int length, byte seed) => new(OpKind.Write, offset, length, seed, 0);
    private static Op D(long offset, int length) => new(OpKind.Discard, offset, length, 0, 0);
    private static readonly Op F = new(OpKind.Flush, 0, 0, 0, 0);
    private static readonly Op R = new(OpKind.Reopen, 0, 0, 0, 0);

    private static void Every(int clusterSize, long size, params Op[] ops)
    {
        foreach (bool cache in new[] { true, false })
            for (int seed = 1; seed <= 4; seed++)
                            foreach (int dirty in new[] { 1, 1 << 20 })   // background commits at once, or only at flushes
                Assert.True(CrashRunner.RunEveryOperation(new CrashScenario(clusterSize, size, ops, cache, 100_000, Array.Empty<double>(), seed, dirty)) > 0);
    }

    /// <summary>Mutation: freed clusters released at FLUSH_REQ instead of after the durable commit.</summary>
    [Fact]
    public void A_discarded_cluster_is_not_reused_by_a_write_racing_the_flush_that_frees_it()
    {
        const int cs = 4096;
        Every(cs, 16 * cs, W(0, cs, 1), F, D(0, cs), F, W(3 * cs, cs, 2), W(5 * cs, cs, 3), F);
    }

    /// <summary>Mutations: no fsync of the metadata log; LiteDB commit before the data flush; a torn commit replayed.</summary>
    [Fact]
    public void Flushed_writes_survive_every_cut_of_a_commit_and_of_a_reopen()
    {
        const int cs = 4096;
        Every(cs, 80 * cs, W(0, 200 * 1024, 7), F, W(cs + 100, 3 * cs, 8), R, W(20 * cs, cs, 9), D(0, 2 * cs), F);
    }
}
