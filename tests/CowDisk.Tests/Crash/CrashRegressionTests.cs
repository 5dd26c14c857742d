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
    private static readonly Op S = new(OpKind.Snapshot, 0, 0, 0, 0);
    private static Op Del(byte which) => new(OpKind.DeleteSnapshot, 0, 0, which, 0);
    private static Op Rev(byte which) => new(OpKind.Revert, 0, 0, which, 0);

    private static void Every(int clusterSize, long size, params Op[] ops)
    {
        foreach (bool cache in new[] { true, false })
            for (int seed = 1; seed <= 4; seed++)
                            foreach (int dirty in new[] { 1, 1 << 20 })   // background commits at once, or only at flushes
                Assert.True(CrashRunner.RunEveryOperation(new CrashScenario(clusterSize, size, ops, cache, 100_000, Array.Empty<double>(), seed, dirty)) > 0);
    }

    /// <summary>
    /// The reproduction: a fresh image's first write (0, 200K) is the victim; of the log writes of its
    /// commit only one reaches the disk (there: the 10th; here each in turn, the confirming last one above all).
    /// LiteDB alone replayed that torn transaction and the image no longer opened, or read zeros where data had
    /// been acknowledged; with the framed log the image opens at its previous commit.
    /// </summary>
    [Fact]
    public void A_commit_torn_down_to_one_log_write_leaves_the_previous_state()
    {
        using var dir = new TempDir();
        var storage = new PowerLossStorage();
        string path = dir.File("disk.img");
        var settings = new CowDisk.Engine.EngineSettings { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };
        using var image = CowDisk.Engine.Images.CowImage.Create(path,
            new CowDisk.Engine.Images.ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }, settings, storage);
        string log = CowDisk.Engine.Images.ImageFiles.For(path).MetadataLogPath;
        storage.Fault = (op, p) => op == PowerLossStorage.StorageOp.Flush && p == log ? 5 : 0;   // the commit never becomes durable
        image.Write(0, ModelRunner.Pattern(200 * 1024, 3));
        Assert.ThrowsAny<CowDisk.Engine.Devices.BlockDeviceException>(() => image.Flush());
        int writes = storage.PendingWrites(log);
        Assert.True(writes >= 2, $"the commit wrote {writes} log frames");
        for (int kept = writes - 1; kept >= 0; kept--)   // the confirming last frame alone first
        {
            var crashed = storage.CrashKeeping((file, n) => file != log || n == kept);
            using var reopened = CowDisk.Engine.Images.CowImage.Open(path,
                new CowDisk.Engine.Images.ImageOpenOptions { Settings = settings, Storage = crashed });
            reopened.CheckInvariants();
            var read = new byte[200 * 1024];
            reopened.Read(0, read);
            Assert.True(read.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"keeping log write {kept}: the unacknowledged write shows");
        }
        storage.Fault = null;
        try { image.Dispose(); } catch (CowDisk.Engine.Devices.BlockDeviceException) { }
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

    /// <summary>
    /// A cut before every storage operation of snapshot create, copy-on-write overwrites, revert (keeping a newer
    /// snapshot) and delete: every durable snapshot reads as frozen, the head keeps its flushed writes, and the
    /// clusters held only by dead snapshots are neither leaked nor reused early.
    /// </summary>
    [Fact]
    public void Snapshot_create_revert_and_delete_survive_every_cut()
    {
        const int cs = 4096;
        Every(cs, 24 * cs, W(0, 3 * cs, 1), S, W(cs + 7, cs, 2), D(2 * cs, cs), S, W(0, 2 * cs, 3), Rev(0), W(5 * cs, cs, 4),
            Del(1), F, Del(0), W(0, cs, 5), F);
    }
}
