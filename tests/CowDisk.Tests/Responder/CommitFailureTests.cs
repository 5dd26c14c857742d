using CowDisk.Engine.Allocation;
using CowDisk.Engine.Images;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Storage;
using CowDisk.Format.Ring;
using CowDisk.Tests.Crash;
using Xunit;
using Op = CowDisk.Tests.Crash.PowerLossStorage.StorageOp;

namespace CowDisk.Tests.Responder;

/// <summary>
/// Group commits that fail, seen from the target's seat with faults injected through the storage seam: a
/// failed fsync ends the session (no commit runs after it, every request fails), and the extents a failed
/// commit would have freed stay held until a later commit is durable, neither leaked nor handed out early.
/// </summary>
public class CommitFailureTests
{
    private const int Enospc = 28, Eio = 5;

    private sealed class Counts
    {
        public int DataFsyncs, LogFsyncs;
    }

    /// <summary>
    /// The fsync fails with ENOSPC (as it may on thin or network storage). The flush is answered EIO, not ENOSPC:
    /// the kernel may have dropped the written pages, so the data is lost, not merely unwritten. The cause keeps
    /// its errno for the frontends. Nothing is committed afterwards, though the mappings are still dirty and the
    /// commit interval (1 ms) passes many times over, and every later request fails with EIO.
    /// </summary>
    [Theory]
    [InlineData(false)]   // the data file's fdatasync, before the mappings
    [InlineData(true)]    // the metadata log's, after LiteDB's commit
    public void After_a_failed_fsync_the_flush_reports_EIO_and_no_commit_ever_runs_again(bool logFsync)
    {
        var storage = new PowerLossStorage();
        var counts = new Counts();
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitIntervalMs = 1, CommitMaxDirtyChunks = 1 << 20 }, storage);
        string data = r.DataPath!, log = ImageFiles.For(data).MetadataLogPath;
        bool failing = true;
        storage.Fault = (op, path) =>
        {
            if (op != Op.Flush) return 0;
            if (path == data) Interlocked.Increment(ref counts.DataFsyncs);
            else if (path == log) Interlocked.Increment(ref counts.LogFsyncs);
            else return 0;
            return Volatile.Read(ref failing) && path == (logFsync ? log : data) ? Enospc : 0;
        };

        r.Write(1, 0);                      // dirty: a background commit follows within the interval, or the flush's
        Assert.Equal(-Eio, r.Flush(2));
        Assert.IsType<StorageException>(r.Responder.Fatal);
        Assert.Equal(Enospc, StorageException.ErrnoOf(r.Responder.Fatal!));
        Volatile.Write(ref failing, false); // the storage works again: still nothing may be committed

        Thread.Sleep(20);                   // only so that the interval has surely passed before the next round
        var read = r.MapRead(3, 0);
        Assert.Equal((MapResponseFlags.Error, -Eio), (read.ResponseFlags, read.Result));
        var write = r.MapWrite(4, 9, 1);
        Assert.Equal((MapResponseFlags.Error, -Eio), (write.ResponseFlags, write.Result));
        Assert.Equal(-Eio, r.Flush(5));
        Assert.False(r.ResponseBell.IsClosed);             // fatal, yet still answering
        r.Stop();

        Assert.Equal(1, counts.DataFsyncs);                 // one commit attempt in all
        Assert.Equal(logFsync ? 1 : 0, counts.LogFsyncs);   // a failed data fsync stops before the log
        Assert.Equal(0, r.Responder.Commits);
        Assert.False(r.DurableMappings(storage).GetMapping(0).IsData);
    }

    /// <summary>
    /// A discard frees a cluster; the commits that would make the discard durable fail (ENOSPC on the log), twice.
    /// Until one succeeds the old mapping is what a power cut would leave, so the cluster must stay held: not
    /// handed to a new write, not lost either. Once a commit succeeds it is reused, and it is not fresh.
    /// </summary>
    [Fact]
    public void Clusters_freed_by_a_failed_commit_are_neither_leaked_nor_reused_before_a_commit_succeeds()
    {
        var storage = new PowerLossStorage();
        bool failLog = false;
        using var r = new ResponderHarness(writable: true, new ResponderSettings { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 }, storage);
        string log = ImageFiles.For(r.DataPath!).MetadataLogPath;
        storage.Fault = (op, path) => op == Op.Write && path == log && Volatile.Read(ref failLog) ? Enospc : 0;

        Assert.Equal(1L, r.Write(1, 0).DeviceBlock);
        Assert.Equal(2L, r.Write(2, 1).DeviceBlock);
        Assert.Equal(0, r.Flush(3));
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Zero, Id = 4, Block = 0, Count = 1 });
        Assert.Equal(RingEventType.Invalidate, r.Receive().Type);
        Assert.Equal(4UL, r.Receive().Id);

        Volatile.Write(ref failLog, true);
        for (ulong id = 5; id <= 6; id++)
        {
            Assert.Equal(-Enospc, r.Flush(id));
            var held = r.CheckInvariants();   // throws on a leak, or on a cluster both free and being freed
            Assert.Equal((1L, 1L, 0L), (held.MappedClusters, held.PendingFreeClusters, held.FreeClusters));
            Assert.True(r.Allocator.IsUsed(1));
        }
        var meanwhile = r.Write(7, 5);        // a new extent while the discard is not durable: not cluster 1
        Assert.Equal(3L, meanwhile.DeviceBlock);
        Assert.True((meanwhile.ResponseFlags & MapResponseFlags.Fresh) != 0);
        Assert.Null(r.Responder.Fatal);

        Volatile.Write(ref failLog, false);
        Assert.Equal(0, r.Flush(8));
        Assert.False(r.Allocator.IsUsed(1));
        var reused = r.Write(9, 6);           // durable now: cluster 1 is reused, and filled (it holds old bytes)
        Assert.Equal(1L, reused.DeviceBlock);
        Assert.Equal(MapResponseFlags.Zero, reused.ResponseFlags & (MapResponseFlags.Zero | MapResponseFlags.Fresh));
        Assert.Equal(0, r.Flush(10));
        var report = r.CheckInvariants();
        Assert.Equal((3L, 0L, 0L), (report.MappedClusters, report.PendingFreeClusters, report.FreeClusters));
        r.Stop();

        // What a reopen would load: the same mappings, and an allocator in the same state as the live one.
        var durable = r.DurableMappings(storage);
        Assert.False(durable.GetMapping(0).IsData);
        Assert.Equal(new long[] { 2, 3, 1 }, new long[] { 1, 5, 6 }.Select(b => durable.GetMapping(b).PhysicalCluster));
        var reopened = new ClusterAllocator(r.Allocator.HighWater);
        foreach (var (_, cluster) in durable.DataMappings()) Assert.True(reopened.TryMarkUsed(cluster));
        Assert.Equal(r.Allocator.UsedCount, reopened.UsedCount);
        Assert.Equal(r.Allocator.HighWater, reopened.HighWater);
        for (long c = 0; c <= r.Allocator.HighWater; c++) Assert.Equal(r.Allocator.IsUsed(c), reopened.IsUsed(c));
    }
}
