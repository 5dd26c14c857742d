using CowDisk.Engine.Images;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Responder;
using CowDisk.Tests.Crash;
using Xunit;
using Op = CowDisk.Tests.Crash.PowerLossStorage.StorageOp;

namespace CowDisk.Tests.Responder;

/// <summary>
/// Group commits the responder starts on its own, with no flush asking: when enough map chunks are dirty, or
/// the oldest uncommitted mapping is old enough. Storage operations are counted through the power-loss
/// simulator's hook; every batch the responder started has run once <see cref="ResponderHarness.Stop"/>
/// returns, so the counts are exact. Nothing here asserts on time.
/// </summary>
public class BackgroundCommitTests
{
    private const int Enospc = 28;
    private const long Chunk = MappingTable.ChunkBlocks;
    private const long FourChunks = 4 * Chunk * 4096;   // bytes of a disk of 4 map chunks of 4 KiB blocks

    /// <summary>Counts the data file's fsyncs (one per commit batch, before its mappings) and fails log writes on demand.</summary>
    private sealed class Probe
    {
        public int DataFsyncs;
        public int LogWriteFailures;
        public volatile bool FailLogWrites;
        public readonly ManualResetEventSlim FirstFailure = new();
        /// <summary>Set when a second batch starts: the first failed (one dirtying, so a success leaves nothing to commit).</summary>
        public readonly ManualResetEventSlim SecondAttempt = new();

        public void Attach(PowerLossStorage storage, ResponderHarness r)
        {
            string data = r.DataPath!, log = ImageFiles.For(data).MetadataLogPath;
            storage.Fault = (op, path) =>
            {
                if (op == Op.Flush && path == data) { if (Interlocked.Increment(ref DataFsyncs) == 2) SecondAttempt.Set(); }
                if (op == Op.Write && path == log && FailLogWrites) { Interlocked.Increment(ref LogWriteFailures); FirstFailure.Set(); return Enospc; }
                return 0;
            };
        }
    }

    /// <summary>Dirties one block in each of the first <paramref name="chunks"/> map chunks; returns once all DONEs are handled.</summary>
    private static void DirtyChunks(ResponderHarness r, int chunks, ulong firstId = 1)
    {
        for (int c = 0; c < chunks; c++) r.Write(firstId + (ulong)c, c * Chunk + 7);
        r.MapRead(firstId + 1000, 3);   // answered after every DONE before it
    }

    private static int CommittedChunks(MappingTable t)
    {
        int n = 0;
        for (long c = 0; c < t.ChunkCount; c++)
            if (t.GetMapping(c * Chunk + 7).IsData) n++;
        return n;
    }

    [Theory]
    [InlineData(2, 0)]   // one chunk short of the threshold: nothing is committed
    [InlineData(3, 1)]   // exactly at it: one commit of the three chunks
    [InlineData(4, 1)]   // past it (crossed by the third): the fourth waits for the next commit
    public void Dirty_chunks_reaching_the_threshold_start_a_commit_without_a_flush(int chunks, int expectedCommits)
    {
        var storage = new PowerLossStorage();
        var probe = new Probe();
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitMaxDirtyChunks = 3, CommitIntervalMs = 600_000 }, storage, FourChunks);
        probe.Attach(storage, r);
        DirtyChunks(r, chunks);
        r.Stop();
        Assert.Equal(expectedCommits, probe.DataFsyncs);
        Assert.Equal(expectedCommits == 0 ? 0 : 3, CommittedChunks(r.DurableMappings(storage)));
    }

    /// <summary>Well short of the threshold, the interval alone commits: the first dirty mapping is the clock.</summary>
    [Fact]
    public void The_interval_commits_dirty_mappings_without_a_flush()
    {
        var storage = new PowerLossStorage();
        var probe = new Probe();
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitMaxDirtyChunks = 1000, CommitIntervalMs = 20 }, storage, FourChunks);
        probe.Attach(storage, r);
        DirtyChunks(r, 2);
        WaitFor(() => r.Responder.Commits >= 1, r);
        r.Stop();
        Assert.Equal(1, r.Responder.Commits);
        Assert.Equal(1, probe.DataFsyncs);
        Assert.Equal(2, CommittedChunks(r.DurableMappings(storage)));
    }

    /// <summary>The same writes with a long interval: no commit until a flush (the clock starts at the first dirty mapping, not at zero).</summary>
    [Fact]
    public void Before_the_interval_nothing_is_committed_and_a_flush_commits_everything()
    {
        var storage = new PowerLossStorage();
        var probe = new Probe();
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitMaxDirtyChunks = 1000, CommitIntervalMs = 600_000 }, storage, FourChunks);
        probe.Attach(storage, r);
        DirtyChunks(r, 2);
        Assert.Equal(0, r.Responder.Commits);
        Assert.Equal(0, probe.DataFsyncs);
        Assert.Equal(0, r.Flush(50));
        Assert.Equal(1, r.Responder.Commits);
        r.Stop();
        Assert.Equal(1, probe.DataFsyncs);
        Assert.Equal(2, CommittedChunks(r.DurableMappings(storage)));
    }

    /// <summary>
    /// A background commit that fails (ENOSPC on the log) is retried, not dropped: a second batch starts with no
    /// flush asking, and once the log takes writes again the same mappings are committed.
    /// </summary>
    [Fact]
    public void A_failed_background_commit_is_retried_after_the_interval()
    {
        var storage = new PowerLossStorage();
        var probe = new Probe { FailLogWrites = true };
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitMaxDirtyChunks = 1, CommitIntervalMs = 20 }, storage, FourChunks);
        probe.Attach(storage, r);
        DirtyChunks(r, 1);
        Assert.True(probe.SecondAttempt.Wait(TimeSpan.FromSeconds(60)), "the failed background commit was not retried");
        probe.FailLogWrites = false;
        WaitFor(() => r.Responder.Commits >= 1, r);
        r.Stop();
        Assert.Equal(1, r.Responder.Commits);
        Assert.Null(r.Responder.Fatal);
        Assert.Equal(1, CommittedChunks(r.DurableMappings(storage)));
    }

    /// <summary>
    /// A background commit that keeps failing is not retried in a loop: with the dirty-chunk threshold already
    /// reached (here 1), the failed batch's chunks are dirty again at once, yet the next attempt waits for the
    /// interval (ten minutes here) or a flush. Two attempts in all: the background one and the flush's.
    /// </summary>
    [Fact]
    public void A_failing_background_commit_is_not_retried_in_a_tight_loop()
    {
        var storage = new PowerLossStorage();
        var probe = new Probe { FailLogWrites = true };
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitMaxDirtyChunks = 1, CommitIntervalMs = 600_000 }, storage, FourChunks);
        probe.Attach(storage, r);
        DirtyChunks(r, 1);
        Assert.True(probe.FirstFailure.Wait(TimeSpan.FromSeconds(60)), "no background commit was attempted");
        Assert.Equal(-Enospc, r.Flush(50));   // the flush's own attempt fails the same way
        r.Stop();
        Assert.Equal(2, probe.DataFsyncs);
        Assert.Equal(0, r.Responder.Commits);
        Assert.Null(r.Responder.Fatal);
        probe.FailLogWrites = false;
        Assert.Equal(0, CommittedChunks(r.DurableMappings(storage)));
    }

    /// <summary>Waits for a condition the responder reaches on its own, waking at each of its rings; fails after 60 s instead of hanging.</summary>
    private static void WaitFor(Func<bool> condition, ResponderHarness r)
    {
        for (int i = 0; i < 600 && !condition(); i++) r.ResponseBell.Wait(100);
        Assert.True(condition(), "the responder did not get there within 60 s");
    }
}
