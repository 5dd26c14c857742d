using System.Text.Json;
using CowDisk.Engine.Images;
using CowDisk.Engine.Native;
using CowDisk.Format.Image;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Snapshots;

/// <summary>
/// Layered blocks: a first write smaller than a cluster the snapshot shares takes a new cluster for its subclusters
/// only and copies nothing (docs/FORMAT.md §9.6). Write, close, reopen, verify; space as du sees it; map and check.
/// </summary>
public class LayerTests
{
    private const int Cs = 64 * 1024;

    // No growth ahead of allocation: a test here counts the host space the data file holds while open.
    private static CowImage NewImage(TempDir dir, long size = 4L << 20, int clusterSize = Cs) =>
        CowImage.Create(dir.File("d.img"), new ImageCreateOptions { Size = size, ClusterSize = clusterSize }, new CowDisk.Engine.EngineSettings { GrowStepMiB = 0 });

    private static byte[] Read(CowImage image, long offset, int length)
    {
        var b = new byte[length];
        image.Read(offset, b);
        return b;
    }

    [Fact]
    public void A_first_4k_write_over_a_shared_cluster_writes_4k_and_reads_back_everywhere()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        var model = ModelRunner.Pattern(1 << 20, 1);
        byte[] frozen;
        long before;
        using (var image = NewImage(dir))
        {
            image.Write(0, model);
            image.CreateSnapshot("s");
            frozen = (byte[])model.Clone();
            image.Flush();
            before = HostFile.AllocatedBytes(path);
            var small = ModelRunner.Pattern(4096, 9);
            image.Write(3 * Cs + 8192, small);     // block 3, subcluster 2
            small.CopyTo(model, 3 * Cs + 8192);
            image.Flush();
            // One new 4 KiB piece, not a 64 KiB copy.
            Assert.InRange(HostFile.AllocatedBytes(path) - before, 4096, 8192);
            Assert.Equal(model, Read(image, 0, 1 << 20));
            var runs = image.Map().Where(r => r.Start < 4 * Cs && r.Start + r.Length > 3 * Cs).ToList();
            Assert.Equal(new[] { MapSource.Shared, MapSource.Own, MapSource.Shared }, runs.Select(r => r.Source));
            Assert.Equal((3L * Cs + 8192, 4096L), (runs[1].Start, runs[1].Length));
            Assert.Equal(runs[0].FileOffset + (runs[2].Start - runs[0].Start), runs[2].FileOffset);   // the old clusters, read in place
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }))
        {
            Assert.Equal(model, Read(image, 0, 1 << 20));
            Assert.Equal(0, image.Check(repair: false).ExitCode);
        }
        using (var view = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Snapshot = "s" }))
            Assert.Equal(frozen, Read(view, 0, 1 << 20));
    }

    /// <summary>Writes at every awkward place of a layered block, with the cache on and off, against a byte model.</summary>
    [Theory]
    [InlineData(8192, true)]
    [InlineData(16384, false)]
    [InlineData(65536, true)]
    [InlineData(65536, false)]
    [InlineData(512 * 1024, true)]
    [InlineData(2 << 20, false)]
    public void Unaligned_writes_into_layered_blocks_match_the_model(int clusterSize, bool cache)
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        long size = 3L * clusterSize + 4097;   // an odd last block
        var model = ModelRunner.Pattern((int)size, 3);
        var settings = new CowDisk.Engine.EngineSettings { MappingCache = cache };
        int ss = new ClusterGeometry(clusterSize, size).SubclusterSize;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = size, ClusterSize = clusterSize }, settings))
        {
            image.Write(0, model);
            image.CreateSnapshot("s1");
            byte seed = 10;
            foreach (var (at, length) in new (long, int)[]
                     {
                         (1, 1), (ss - 1, 2), (ss + 7, ss - 7), (2L * clusterSize + 511, 513), (3L * clusterSize + 1, 4096),
                         (clusterSize - 3, 6), (size - 5, 5), (2 * ss, ss), (3, ss * 2),
                     })
            {
                var data = ModelRunner.Pattern(length, seed++);
                image.Write(at, data);
                data.CopyTo(model, at);
                Assert.Equal(model, Read(image, 0, (int)size));
            }
            image.CreateSnapshot("s2");   // layered blocks are shared now: the next write copies them whole
            var late = ModelRunner.Pattern(100, 99);
            image.Write(ss + 50, late);
            late.CopyTo(model, ss + 50);
            Assert.Equal(model, Read(image, 0, (int)size));
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions { Settings = settings }))
        {
            Assert.Equal(model, Read(image, 0, (int)size));
            image.CheckInvariants();
        }
        using var ro = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        Assert.Equal(0, ro.Check(repair: false).ExitCode);
    }

    /// <summary>A layered block written until it holds every subcluster is an ordinary extent; the shared one goes with the snapshot.</summary>
    [Fact]
    public void A_filled_layer_becomes_an_ordinary_extent_and_the_snapshot_takes_the_old_one_with_it()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        const long mib = 1 << 20;
        using (var image = NewImage(dir, 16 * mib))
        {
            image.Write(0, ModelRunner.Pattern((int)(8 * mib), 1));
            image.CreateSnapshot("s");
            // Every 4 KiB of the first 8 MiB, in an order that fills each cluster's layer piece by piece.
            var piece = ModelRunner.Pattern(4096, 7);
            for (long sub = 0; sub < 16; sub++)
                for (long block = 0; block < 128; block++)
                    image.Write(block * Cs + ((sub * 5) % 16) * 4096, piece);
            image.Flush();
            Assert.InRange(HostFile.AllocatedBytes(path), 16 * mib, 17 * mib);
            Assert.All(image.Map().Where(r => r.Start < 8 * mib), r => Assert.Equal(MapSource.Own, r.Source));
            image.DeleteSnapshot("s");
            image.Flush();
            Assert.InRange(HostFile.AllocatedBytes(path), 8 * mib, 8 * mib + mib / 4);
            image.Discard(0, 16 * mib);
            image.Flush();
            Assert.InRange(HostFile.AllocatedBytes(path), 0, mib / 4);
        }
        using var ro = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        Assert.Equal(0, ro.Check(repair: false).ExitCode);
    }

    /// <summary>Deleting the snapshot first: the old cluster stays for the layer's other subclusters until the layer goes.</summary>
    [Fact]
    public void The_cluster_under_a_layer_outlives_the_snapshot_until_the_layer_is_gone()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        var model = ModelRunner.Pattern(4 * Cs, 2);
        using (var image = NewImage(dir))
        {
            image.Write(0, model);
            image.CreateSnapshot("s");
            var small = ModelRunner.Pattern(4096, 5);
            image.Write(Cs + 4096, small);
            small.CopyTo(model, Cs + 4096);
            image.DeleteSnapshot("s");
            Assert.Empty(image.ListSnapshots());
            Assert.Equal(model, Read(image, 0, 4 * Cs));
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions()))
        {
            Assert.Equal(model, Read(image, 0, 4 * Cs));
            var check = image.Check(repair: false);
            Assert.True(check.ExitCode == 0, string.Join("; ", check.Corruptions) + $" leaks {check.LeakedClusters}");
            var runs = image.Map().Where(r => r.Start >= Cs && r.Start < 2 * Cs).ToList();
            Assert.All(runs, r => Assert.Equal(MapSource.Own, r.Source));   // nothing shares the old cluster now
            image.Discard(Cs, Cs);   // the layer and the cluster under it go together
            model.AsSpan(Cs, Cs).Clear();
            Assert.Equal(model, Read(image, 0, 4 * Cs));
        }
        using var ro = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        var after = ro.Check(repair: false);
        Assert.Equal(0, after.ExitCode);
        Assert.Equal(3, after.DataClusters);
    }

    [Fact]
    public void Revert_to_a_snapshot_that_saw_a_layer_and_back_reads_as_each_was()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        var v0 = ModelRunner.Pattern(4 * Cs, 1);
        using var image = NewImage(dir);
        image.Write(0, v0);
        image.CreateSnapshot("s0");
        var v1 = (byte[])v0.Clone();
        ModelRunner.Pattern(4096, 2).CopyTo(v1, 4096);   // block 0 layered over s0's cluster
        image.Write(4096, v1.AsSpan(4096, 4096));
        image.CreateSnapshot("s1");                          // s1 reads the layer
        var v2 = (byte[])v1.Clone();
        ModelRunner.Pattern(512, 3).CopyTo(v2, 100);         // the layer is shared: copied whole
        image.Write(100, v2.AsSpan(100, 512));
        Assert.Equal(v2, Read(image, 0, 4 * Cs));
        image.RevertSnapshot("s1");
        Assert.Equal(v1, Read(image, 0, 4 * Cs));
        image.RevertSnapshot("s0");
        Assert.Equal(v0, Read(image, 0, 4 * Cs));
        image.RevertSnapshot("s1");
        Assert.Equal(v1, Read(image, 0, 4 * Cs));
        image.DeleteSnapshot("s0");                          // s1's layer still reads s0's old cluster
        image.Dispose();
        using var reopened = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        Assert.Equal(v1, Read(reopened, 0, 4 * Cs));
        Assert.Equal(0, reopened.Check(repair: false).ExitCode);
        using var s1 = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Snapshot = "s1" });
        Assert.Equal(v1, Read(s1, 0, 4 * Cs));
    }

    /// <summary>The CLI as a user meets it: map shows the 4 KiB of own data inside the shared cluster; check is clean.</summary>
    [Fact]
    public void Map_and_check_through_the_command()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        Assert.Equal(0, CowdiskExecutable.Run("create", d, "--size", "4M").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("io", d, "write", "-P", "0xaa", "0", "1M").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("snapshot", "create", d, "s").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("io", d, "write", "-P", "0xbb", "68K", "4K").ExitCode);
        var map = JsonDocument.Parse(CowdiskExecutable.Run("map", d, "--output", "json").Output).RootElement.EnumerateArray()
            .Select(r => (r.GetProperty("start").GetInt64(), r.GetProperty("length").GetInt64(), r.GetProperty("source").GetString())).ToList();
        Assert.Equal(new[] { (0L, 68L << 10, "shared"), (68L << 10, 4L << 10, "own"), (72L << 10, 952L << 10, "shared") }, map.Take(3));
        Assert.Equal(0, CowdiskExecutable.Run("io", d, "verify", "-P", "0xbb", "68K", "4K").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("io", d, "verify", "-P", "0xaa", "72K", "952K").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("io", $"{d}@s", "verify", "-P", "0xaa", "0", "1M").ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("check", d).ExitCode);
    }

    /// <summary>
    /// A copy of a shared layered block reads the block before its DONE: with every ordinary call slot held by
    /// requests deferred behind that allocation, the read must still get through (its own slot pool).
    /// </summary>
    [Fact]
    public void Copying_shared_layered_blocks_with_one_call_slot_and_four_writers_does_not_deadlock()
    {
        const int blocks = 256;
        using var dir = new TempDir();
        var image = CowImage.Create(dir.File("d.img"), new ImageCreateOptions { Size = (long)blocks * Cs, ClusterSize = Cs },
            new CowDisk.Engine.EngineSettings { MaxInFlightMaps = 1 });
        image.Write(0, ModelRunner.Pattern(blocks * Cs, 1));
        image.CreateSnapshot("s0");
        for (int b = 0; b < blocks; b++) image.Write((long)b * Cs + 4096, ModelRunner.Pattern(4096, 2));   // every block layered
        image.CreateSnapshot("s1");                                                                           // and shared
        var work = Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Factory.StartNew(() =>
        {
            var piece = ModelRunner.Pattern(512, (byte)(10 + t));
            for (int b = 0; b < blocks; b++) image.Write((long)b * Cs + 8192 * (t + 1), piece);
        }, TaskCreationOptions.LongRunning)));
        bool finished = work.Wait(TimeSpan.FromSeconds(60));
        if (finished) image.Dispose();   // a hung image cannot be closed: its close waits for the stuck writes
        Assert.True(finished, "writes to shared layered blocks hung");
    }

    /// <summary>What snapshot list says a snapshot alone holds is what deleting it frees, clusters under dead layers included.</summary>
    [Fact]
    public void Exclusive_bytes_count_a_cluster_only_a_snapshots_dead_layer_reads()
    {
        using var dir = new TempDir();
        using var image = NewImage(dir, 4L * Cs);
        image.Write(0, ModelRunner.Pattern(4 * Cs, 1));
        image.CreateSnapshot("s0");
        image.Write(4096, ModelRunner.Pattern(4096, 2));      // block 0: a layer over s0's cluster
        image.CreateSnapshot("s1");                             // s1 reads the layer (and the cluster under it)
        image.Write(0, ModelRunner.Pattern(Cs, 3));             // the layer is shared: block 0 copied whole
        image.DeleteSnapshot("s0");                             // the cluster under: read by no snapshot, pinned by a dead layer
        long before = image.CheckInvariants().MappedClusters;
        long exclusive = image.ListSnapshots().Single(s => s.Name == "s1").ExclusiveBytes;
        image.DeleteSnapshot("s1");
        long after = image.CheckInvariants().MappedClusters;
        Assert.Equal(2L * Cs, exclusive);
        Assert.Equal((before - after) * Cs, exclusive);
    }

    [Fact]
    public void Map_calls_every_part_of_a_layered_block_a_snapshot_reads_shared()
    {
        using var dir = new TempDir();
        using var image = NewImage(dir, 4L * Cs);
        image.Write(0, ModelRunner.Pattern(4 * Cs, 1));
        image.CreateSnapshot("s0");
        image.Write(4096, ModelRunner.Pattern(4096, 2));
        image.CreateSnapshot("s1");
        image.DeleteSnapshot("s0");                             // s1 reads the whole layered block, both clusters
        Assert.All(image.Map().Where(r => r.Start < Cs), r => Assert.Equal(MapSource.Shared, r.Source));
    }

    [Fact]
    public void Opening_an_image_with_layers_commits_nothing_until_something_changes()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        using (var image = NewImage(dir, 4L * Cs))
        {
            image.Write(0, ModelRunner.Pattern(4 * Cs, 1));
            image.CreateSnapshot("s");
            image.Write(4096, ModelRunner.Pattern(4096, 2));
        }
        using var reopened = CowImage.Open(path, new ImageOpenOptions());
        reopened.Flush();
        Assert.Equal(0, reopened.MetadataCommits);
    }

    [Fact]
    public void Check_counts_the_cluster_under_a_live_layer_as_the_disks_data()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        using (var image = NewImage(dir, 4L * Cs))
        {
            image.Write(0, ModelRunner.Pattern(4 * Cs, 1));
            image.CreateSnapshot("s");
            image.Write(4096, ModelRunner.Pattern(4096, 2));
            image.DeleteSnapshot("s");
        }
        using var ro = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        var report = ro.Check(repair: false);
        Assert.Equal(0, report.ExitCode);
        Assert.Equal(0, report.SnapshotOnlyClusters);
        Assert.Equal(5, report.DataClusters);
    }
}
