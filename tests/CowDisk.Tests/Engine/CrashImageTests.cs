using CowDisk.Engine;
using CowDisk.Engine.Images;
using Xunit;

namespace CowDisk.Tests.Engine;

/// <summary>
/// Simulates kill -9: copies an open image's files (what the page cache holds at that instant) and opens the
/// copy. Background commits are pushed out of the way, so only flushes commit.
/// </summary>
public class CrashImageTests
{
    private static readonly EngineSettings NoBackgroundCommit = new() { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };

    private static string CrashCopy(TempDir dir, string imagePath, string name)
    {
        string copy = dir.File(name);
        var files = ImageFiles.For(imagePath);
        var target = ImageFiles.For(copy);
        Copy(files.DataPath, target.DataPath);
        Copy(files.MetadataPath, target.MetadataPath);
        if (File.Exists(files.MetadataLogPath)) Copy(files.MetadataLogPath, target.MetadataLogPath);
        return copy;
    }

    // cp(1), since .NET's own copy honours the writer's flock and would (rightly) be refused. Sparse always: the
    // data file's preallocated tail reads as zeros and holds no data (SEEK_DATA skips it); a dense copy would.
    private static void Copy(string from, string to)
    {
        using var cp = System.Diagnostics.Process.Start("cp", new[] { "--sparse=always", "--", from, to })!;
        cp.WaitForExit();
        Assert.Equal(0, cp.ExitCode);
    }

    [Fact]
    public void Flushed_writes_survive_and_reopen_needs_no_manual_step()
    {
        using var dir = new TempDir();
        string path = dir.File("a.img");
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }, NoBackgroundCommit);
        image.Write(8192, ModelRunner.Pattern(10000, 1));
        image.Flush();
        image.Write(100_000, ModelRunner.Pattern(5000, 2));   // not flushed: may or may not survive
        string copy = CrashCopy(dir, path, "crashed.img");
        using var reopened = CowImage.Open(copy, new ImageOpenOptions());
        Assert.True(reopened.WasUnclean);
        var read = new byte[10000];
        reopened.Read(8192, read);
        Assert.Equal(ModelRunner.Pattern(10000, 1), read);
        reopened.CheckInvariants();
    }

    [Fact]
    public void A_freed_extent_is_not_reused_before_its_release_is_durable()
    {
        using var dir = new TempDir();
        string path = dir.File("b.img");
        const int cs = 4096;
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = 64 * cs, ClusterSize = cs }, NoBackgroundCommit);
        var a = ModelRunner.Pattern(cs, 0x11);
        image.Write(0, a);
        image.Flush();                                        // block 0 → cluster P, durable
        image.Discard(0, cs);                                  // P freed in memory only
        image.Write(10 * cs, ModelRunner.Pattern(cs, 0x77));  // must not land in P
        image.Write(20 * cs, ModelRunner.Pattern(cs, 0x78));
        string copy = CrashCopy(dir, path, "crashed.img");    // the discard never became durable
        using var reopened = CowImage.Open(copy, new ImageOpenOptions { ReadOnly = true });
        var read = new byte[cs];
        reopened.Read(0, read);
        Assert.Equal(a, read);                                // block 0's flushed content, not another block's
    }

    /// <summary>
    /// Clusters written but never committed are free after a crash (free space is derived), yet hold host space:
    /// a leak for `check`. The first writable open after the crash gives it back, below the high water (a reused
    /// hole) and past it (the file's tail), and touches nothing a mapping or a snapshot reads.
    /// </summary>
    [Fact]
    public void A_writable_open_after_a_crash_gives_back_the_space_of_uncommitted_writes()
    {
        using var dir = new TempDir();
        string path = dir.File("c.img");
        const int cs = 4096;
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = 64 * cs, ClusterSize = cs }, NoBackgroundCommit);
        var flushed = ModelRunner.Pattern(4 * cs, 0x21);
        image.Write(0, flushed);
        image.Flush();
        image.Discard(cs, cs);
        image.Flush();                                         // block 1's cluster is a hole below the high water
        Array.Clear(flushed, cs, cs);
        image.CreateSnapshot("s");                             // durable, with everything before it
        image.Write(0, ModelRunner.Pattern(cs, 0x22));         // copy on write into the hole: never committed
        image.Write(10 * cs, ModelRunner.Pattern(2 * cs, 0x23)); // two clusters past the high water: never committed
        string copy = CrashCopy(dir, path, "crashed.img");

        using (var crashed = CowImage.Open(copy, new ImageOpenOptions { ReadOnly = true }))
        {
            var before = crashed.Check(repair: false);
            Assert.Equal(3, before.LeakedClusters);            // what the crash left: a read-only open changes nothing
            Assert.Equal(3, before.ExitCode);
        }
        using (var reopened = CowImage.Open(copy, new ImageOpenOptions()))
        {
            Assert.True(reopened.WasUnclean);
            Assert.Equal(3, reopened.ReclaimedClusters);
            var repair = reopened.Check(repair: true);             // check --repair names what the open gave back
            Assert.Equal((3, 3, 0), (repair.LeakedClusters, repair.LeaksFixed, repair.ExitCode));
        }

        using var again = CowImage.Open(copy, new ImageOpenOptions { ReadOnly = true });
        var report = again.Check(repair: false);
        Assert.True(report.ExitCode == 0, $"check after the writable reopen: {report.LeakedClusters} leaked, {string.Join("; ", report.Corruptions)}");
        var read = new byte[4 * cs];
        again.Read(0, read);
        Assert.Equal(flushed, read);
        var tail = new byte[2 * cs];
        again.Read(10 * cs, tail);
        Assert.True(tail.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a write that was never flushed shows");
        using var snapshot = CowImage.Open(copy, new ImageOpenOptions { ReadOnly = true, Snapshot = "s" });
        snapshot.Read(0, read);
        Assert.Equal(flushed, read);
    }

    /// <summary>
    /// The data file grows ahead of its writes (fallocate, a step at a time) and a clean close cuts the unused tail
    /// off, so an image at rest is as long as its highest cluster in use. A crash leaves the tail; the next writable
    /// open cuts it, and a cluster allocated past the cut is fresh again: a partial write there reads zeros around it.
    /// </summary>
    [Fact]
    public void The_data_file_grows_ahead_of_writes_and_loses_the_unused_tail_at_close_or_after_a_crash()
    {
        using var dir = new TempDir();
        string path = dir.File("g.img");
        const int cs = 4096;
        var settings = NoBackgroundCommit with { GrowStepMiB = 1 };
        var data = ModelRunner.Pattern(3 * cs, 0x31);
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 1024 * cs, ClusterSize = cs }, settings))
        {
            image.Write(0, data);                                  // clusters 1..3
            image.Flush();
            Assert.True(new FileInfo(path).Length >= 4 * cs + (1 << 20), $"grown to {new FileInfo(path).Length}, not a step ahead");
        }
        Assert.Equal(4 * cs, new FileInfo(path).Length);           // cut back to the high water at the clean close

        using (var image = CowImage.Open(path, new ImageOpenOptions { Settings = settings }))
        {
            image.Write(500 * cs + 100, ModelRunner.Pattern(200, 0x32));   // cluster 4, inside a new step; never flushed
            image.Write(3 * cs, ModelRunner.Pattern(cs, 0x33));             // cluster 5
            image.Flush();
            image.Write(600 * cs, ModelRunner.Pattern(cs, 0x34));           // cluster 6: never committed
            string copy = CrashCopy(dir, path, "crashed.img");
            Assert.True(new FileInfo(copy).Length > 7 * cs);
            using (var reopened = CowImage.Open(copy, new ImageOpenOptions { Settings = NoBackgroundCommit with { GrowStepMiB = 0 } }))
            {
                Assert.True(reopened.WasUnclean);
                Assert.Equal(6 * cs, new FileInfo(copy).Length);   // cut at the open: cluster 5 is the highest in use
                reopened.Write(700 * cs + 10, ModelRunner.Pattern(10, 0x35));  // a fresh cluster past the cut: no fill needed
                var block = new byte[cs];
                reopened.Read(700 * cs, block);
                Assert.True(block.AsSpan(0, 10).IndexOfAnyExcept((byte)0) < 0 && block.AsSpan(20).IndexOfAnyExcept((byte)0) < 0,
                    "stale bytes of an uncommitted write show around a new one");
                reopened.Read(600 * cs, block);
                Assert.True(block.AsSpan().IndexOfAnyExcept((byte)0) < 0, "a write that was never flushed shows");
                reopened.CheckInvariants();
            }
            using var again = CowImage.Open(copy, new ImageOpenOptions { ReadOnly = true });
            var report = again.Check(repair: false);
            Assert.True(report.ExitCode == 0, $"check: {report.LeakedClusters} leaked, {string.Join("; ", report.Corruptions)}");
            var read = new byte[4 * cs];
            again.Read(0, read);
            Assert.Equal(data, read.AsSpan(0, 3 * cs).ToArray());
            Assert.Equal(ModelRunner.Pattern(cs, 0x33), read.AsSpan(3 * cs).ToArray());
        }
    }

    [Fact]
    public void With_no_grow_step_the_data_file_grows_only_by_its_writes()
    {
        using var dir = new TempDir();
        string path = dir.File("s.img");
        const int cs = 4096;
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = 1024 * cs, ClusterSize = cs }, NoBackgroundCommit with { GrowStepMiB = 0 });
        image.Write(0, ModelRunner.Pattern(100, 0x41));
        image.Flush();
        Assert.Equal(cs + 100, new FileInfo(path).Length);   // the header cluster, then the 100 bytes written into cluster 1
    }
}
