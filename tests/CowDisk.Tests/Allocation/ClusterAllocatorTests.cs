using CowDisk.Engine.Allocation;
using CowDisk.Engine.Devices;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Allocation;

/// <summary>
/// The allocator alone: next-fit reuse of freed clusters, which clusters may be reported fresh (and so skip
/// their zero fill), the capacity of a data device, and the bitmap growing past its first 4,096 clusters.
/// </summary>
public class ClusterAllocatorTests
{
    private const int BitmapClusters = 64 * 64;   // what the first bitmap covers before it grows

    private static (long Start, int Count, bool Fresh) Alloc(ClusterAllocator a, int maxCount)
    {
        long start = a.Allocate(maxCount, out int count, out bool fresh);
        return (start, count, fresh);
    }

    [Fact]
    public void An_empty_data_file_is_filled_from_cluster_1_with_fresh_consecutive_runs()
    {
        var a = new ClusterAllocator(dataFileClusters: 1);
        Assert.Equal((1L, 3, true), Alloc(a, 3));
        Assert.Equal((4L, 1, true), Alloc(a, 1));
        Assert.Equal((5L, 2, true), Alloc(a, 2));
        Assert.Equal(7, a.HighWater);
        Assert.Equal(6, a.UsedCount);
        Assert.Equal(0, a.FreeBelowHighWater);
        Assert.False(a.IsUsed(0));   // the header's cluster is never handed out
        Assert.False(a.IsUsed(7));
    }

    [Fact]
    public void A_freed_cluster_is_reused_before_the_file_grows_and_is_not_fresh()
    {
        var a = new ClusterAllocator(1);
        Assert.Equal((1L, 10, true), Alloc(a, 10));
        a.Release(4, 2);
        Assert.False(a.IsUsed(4));
        Assert.False(a.IsUsed(5));
        Assert.Equal(2, a.FreeBelowHighWater);
        // The hole, not the end of the file; and clipped to the hole, not run on into used clusters.
        Assert.Equal((4L, 2, false), Alloc(a, 8));
        Assert.Equal(0, a.FreeBelowHighWater);
        Assert.Equal((11L, 1, true), Alloc(a, 1));   // no hole left: the file grows again, fresh
    }

    /// <summary>
    /// Once allocated, a cluster holds bytes: freed and handed out again it must be zero filled, so it is never
    /// reported fresh a second time, however often it goes round, and wherever the cursor is.
    /// </summary>
    [Fact]
    public void A_cluster_once_allocated_is_never_fresh_again()
    {
        var a = new ClusterAllocator(1);
        Assert.Equal((1L, 1, true), Alloc(a, 1));
        for (int round = 0; round < 3; round++)
        {
            a.Release(1, 1);
            Assert.Equal((1L, 1, false), Alloc(a, 1));
        }
        Assert.Equal((2L, 4, true), Alloc(a, 4));
        a.Release(2, 4);
        Assert.Equal((2L, 4, false), Alloc(a, 4));
        Assert.Equal((6L, 1, true), Alloc(a, 1));
    }

    /// <summary>
    /// Clusters inside the data file at open hold old bytes even when nothing maps them (freed before a crash or
    /// the close): none of them is fresh, even when the allocator appends past the highest mapped one.
    /// </summary>
    [Fact]
    public void A_cluster_inside_the_data_file_at_open_is_never_fresh()
    {
        var a = new ClusterAllocator(dataFileClusters: 10);
        Assert.True(a.TryMarkUsed(1));
        Assert.True(a.TryMarkUsed(2));
        Assert.Equal(3, a.HighWater);
        Assert.Equal((3L, 4, false), Alloc(a, 4));     // 3..6: inside the file
        Assert.Equal((7L, 5, false), Alloc(a, 5));     // 7..11: 7..9 inside the file, so the run is not fresh
        Assert.Equal((12L, 1, true), Alloc(a, 1));     // past anything the file ever held
        var device = new ClusterAllocator(dataFileClusters: 8, capacity: 8);   // a device: every cluster exists
        Assert.Equal((1L, 7, false), Alloc(device, 100));
    }

    [Fact]
    public void Releasing_moves_the_cursor_back_so_the_lowest_freed_cluster_is_reused_first()
    {
        var a = new ClusterAllocator(1);
        Assert.Equal((1L, 10, true), Alloc(a, 10));
        a.Release(8, 1);
        Assert.Equal(8L, Alloc(a, 1).Start);   // the cursor is at 9 now
        a.Release(3, 1);
        a.Release(9, 1);                        // behind the cursor's old place, ahead of the hole at 3
        Assert.Equal((3L, 1, false), Alloc(a, 5));
        Assert.Equal((9L, 1, false), Alloc(a, 5));
        Assert.Equal((11L, 5, true), Alloc(a, 5));
    }

    [Fact]
    public void Next_fit_goes_on_from_the_cursor_and_wraps_around_to_earlier_holes()
    {
        var a = new ClusterAllocator(1);
        Assert.Equal((1L, 20, true), Alloc(a, 20));
        a.Release(15, 2);
        a.Release(5, 2);                        // the cursor is at 5
        Assert.Equal((5L, 1, false), Alloc(a, 1));
        Assert.Equal((6L, 1, false), Alloc(a, 1));
        Assert.Equal((15L, 2, false), Alloc(a, 4));   // on from the cursor
        a.Release(2, 1);
        a.Release(18, 1);
        Assert.Equal((2L, 1, false), Alloc(a, 1));    // released behind the cursor: back to it
        Assert.Equal((18L, 1, false), Alloc(a, 1));
        Assert.Equal((21L, 1, true), Alloc(a, 1));
    }

    [Fact]
    public void A_full_device_returns_minus_one_and_a_run_stops_at_its_capacity()
    {
        var a = new ClusterAllocator(dataFileClusters: 1, capacity: 6);
        Assert.Equal((1L, 5, true), Alloc(a, 100));   // clusters 1..5: the device has 6 with the header's
        var full = Alloc(a, 1);
        Assert.Equal((-1L, 0), (full.Start, full.Count));
        Assert.Equal(6, a.HighWater);
        a.Release(2, 2);
        Assert.Equal((2L, 2, false), Alloc(a, 100));
        Assert.Equal(-1L, Alloc(a, 1).Start);
        Assert.Equal(5, a.UsedCount);
        Assert.Equal(-1L, Alloc(new ClusterAllocator(1, capacity: 1), 1).Start);   // only the header fits
    }

    [Fact]
    public void A_cluster_freed_twice_is_a_corrupt_image()
    {
        var a = new ClusterAllocator(1);
        Alloc(a, 4);
        a.Release(2, 1);
        Assert.Throws<CorruptImageException>(() => a.Release(2, 1));
        Assert.Throws<CorruptImageException>(() => a.Release(4, 2));       // 4 is used, 5 never was
        Assert.Throws<CorruptImageException>(() => a.Release(1000, 1));    // past the high water
        Assert.Throws<CorruptImageException>(() => a.Release(100_000, 1)); // past the bitmap
    }

    [Fact]
    public void Marking_refuses_the_header_cluster_and_a_cluster_marked_twice()
    {
        var a = new ClusterAllocator(20);
        Assert.False(a.TryMarkUsed(0));
        Assert.False(a.TryMarkUsed(-1));
        Assert.False(a.IsUsed(0));
        Assert.Equal(0, a.UsedCount);
        Assert.True(a.TryMarkUsed(7));
        Assert.False(a.TryMarkUsed(7));
        Assert.Equal(1, a.UsedCount);
        Assert.Equal(8, a.HighWater);
        Assert.Equal(6, a.FreeBelowHighWater);
        Assert.True(a.TryMarkUsed(3));
        Assert.Equal(8, a.HighWater);                   // not lowered by a lower cluster
        Assert.Equal((1L, 2, false), Alloc(a, 10));     // the holes below the mapped clusters, first
    }

    [Fact]
    public void The_bitmap_grows_past_its_first_4096_clusters_word_by_word_and_in_jumps()
    {
        var a = new ClusterAllocator(1);
        Assert.False(a.IsUsed(BitmapClusters));          // past the bitmap: free, not an error
        Assert.False(a.IsUsed(1L << 40));
        Assert.True(a.TryMarkUsed(BitmapClusters - 1));
        Assert.True(a.TryMarkUsed(BitmapClusters));      // the first bit of the first new word
        Assert.True(a.TryMarkUsed(BitmapClusters + 63));
        Assert.True(a.TryMarkUsed(BitmapClusters + 64));
        long far = 5L * BitmapClusters + 17;             // more than doubling at once
        Assert.True(a.TryMarkUsed(far));
        Assert.False(a.TryMarkUsed(far));
        foreach (long c in new[] { BitmapClusters - 1L, BitmapClusters, BitmapClusters + 63L, BitmapClusters + 64L, far })
            Assert.True(a.IsUsed(c), $"cluster {c}");
        foreach (long c in new[] { BitmapClusters - 2L, BitmapClusters + 1L, BitmapClusters + 62L, BitmapClusters + 65L, far - 1, far + 1 })
            Assert.False(a.IsUsed(c), $"cluster {c}");
        Assert.Equal(5, a.UsedCount);
        Assert.Equal(far + 1, a.HighWater);
        a.Release(BitmapClusters, 1);
        Assert.False(a.IsUsed(BitmapClusters));
        Assert.True(a.IsUsed(BitmapClusters - 1));
    }

    [Fact]
    public void Allocating_one_cluster_at_a_time_past_4096_keeps_every_cluster_distinct_and_reuses_holes_across_words()
    {
        const int total = 2 * BitmapClusters + 100;
        var a = new ClusterAllocator(1);
        for (long expected = 1; expected <= total; expected++)
            Assert.Equal((expected, 1, true), Alloc(a, 1));
        Assert.Equal(total, a.UsedCount);
        Assert.Equal(total + 1, a.HighWater);
        for (long c = 1; c <= total; c++) Assert.True(a.IsUsed(c), $"cluster {c}");
        // Holes straddling word boundaries above the first bitmap: found again in order, as one run each.
        a.Release(BitmapClusters - 3, 7);          // 4093..4099
        a.Release(BitmapClusters + 60, 10);        // 4156..4165
        a.Release(2 * BitmapClusters + 64, 1);     // 8256
        Assert.Equal((BitmapClusters - 3L, 7, false), Alloc(a, 100));
        Assert.Equal((BitmapClusters + 60L, 10, false), Alloc(a, 100));
        Assert.Equal((2L * BitmapClusters + 64, 1, false), Alloc(a, 100));
        Assert.Equal(((long)total + 1, 100, true), Alloc(a, 100));
    }

    [Fact]
    public void One_big_run_past_4096_clusters()
    {
        var a = new ClusterAllocator(1);
        Assert.Equal((1L, 10_000, true), Alloc(a, 10_000));
        Assert.True(a.IsUsed(10_000));
        Assert.False(a.IsUsed(10_001));
        a.Release(4000, 200);
        Assert.Equal((4000L, 200, false), Alloc(a, 1000));
    }

    // ---- model-based: the allocator against a set of used clusters and a next-fit reference ----

    private static int Cases(int normal) =>
        int.TryParse(Environment.GetEnvironmentVariable("COWDISK_PROPERTY_TESTS"), out int n) && n > 0 ? n : normal;

    public sealed record AllocOp(bool Release, int Count, int Pick)
    {
        public override string ToString() => Release ? $"Release(pick {Pick}, up to {Count})" : $"Allocate({Count})";
    }

    public sealed record AllocScenario(long DataFileClusters, long Capacity, int[] Mapped, AllocOp[] Ops)
    {
        public override string ToString() =>
            $"file {DataFileClusters} clusters, capacity {(Capacity == long.MaxValue ? "unbounded" : Capacity)}, mapped [{string.Join(",", Mapped)}]: {string.Join("; ", Ops.Select(o => o.ToString()))}";
    }

    private static Gen<AllocScenario> ScenarioGen() =>
        from capacity in Gen.Frequency((3, Gen.Constant(long.MaxValue)), (1, Gen.Choose(2, 300).Select(c => (long)c)), (1, Gen.Choose(4000, 4300).Select(c => (long)c)))
        from fileClusters in Gen.Choose(0, 200).Select(f => Math.Min(f, capacity))
        from mapped in Gen.ListOf(Gen.Choose(0, 199)).Select(l => l.Where(c => c >= 1 && c < fileClusters).Distinct().ToArray())
        from ops in Gen.ListOf(OpGen()).Select(l => l.Take(60).ToArray())
        select new AllocScenario(fileClusters, capacity, mapped, ops);

    private static Gen<AllocOp> OpGen() =>
        from release in Gen.Frequency((3, Gen.Constant(false)), (2, Gen.Constant(true)))
        from count in Gen.Frequency((6, Gen.Choose(1, 9)), (2, Gen.Elements(63, 64, 65, 200)), (1, Gen.Elements(1000, 4097)))
        from pick in Gen.Choose(0, int.MaxValue - 1)
        select new AllocOp(release, count, pick);

    [Fact]
    public void Random_allocate_and_release_sequences_match_a_next_fit_model() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Cases(300)), Prop.ForAll(ScenarioGen().ToArbitrary(), RunModel));

    private static void RunModel(AllocScenario s)
    {
        try { RunModelChecked(s); }
        catch (Exception e) { throw new Xunit.Sdk.XunitException($"{e.Message}\nscenario: {s}"); }
    }

    private static void RunModelChecked(AllocScenario s)
    {
        var a = new ClusterAllocator(s.DataFileClusters, s.Capacity);
        var used = new SortedSet<long>();
        foreach (int c in s.Mapped)
        {
            Assert.True(a.TryMarkUsed(c));
            used.Add(c);
        }
        long highWater = used.Count == 0 ? 1 : used.Max + 1;
        var holes = new SortedSet<long>();   // free clusters below the high water
        for (long c = 1; c < highWater; c++) if (!used.Contains(c)) holes.Add(c);
        // Everything below this may hold bytes: inside the data file at open, or allocated at some time.
        long freshFrom = Math.Max(1, s.DataFileClusters);
        long cursor = 1;
        Assert.Equal(highWater, a.HighWater);

        foreach (var op in s.Ops)
        {
            if (op.Release)
            {
                if (used.Count == 0) continue;
                long first = used.ElementAt(op.Pick % used.Count);
                int n = 1;
                while (n < op.Count && used.Contains(first + n)) n++;
                a.Release(first, n);
                for (long c = first; c < first + n; c++)
                {
                    used.Remove(c);
                    holes.Add(c);
                    Assert.False(a.IsUsed(c), $"{op}: cluster {c} still used after its release");
                }
                cursor = Math.Min(cursor, first);
                Assert.Equal(holes.Count, a.FreeBelowHighWater);
                continue;
            }

            // Next fit: the first hole from the cursor, else the first hole at all, else the end of the file.
            long expected = FirstHole(holes, cursor);
            if (expected < 0) expected = FirstHole(holes, 1);
            if (expected < 0) expected = highWater < s.Capacity ? highWater : -1;

            long start = a.Allocate(op.Count, out int count, out bool fresh);
            if (expected < 0)
            {
                Assert.True(start == -1, $"{op}: returned {start}+{count} from a full device");
                continue;
            }
            Assert.True(start >= 1, $"{op}: returned {start} while cluster {expected} is free");
            Assert.True(count >= 1 && count <= op.Count, $"{op}: count {count}");
            Assert.True(start + count <= s.Capacity, $"{op}: run {start}+{count} past the capacity {s.Capacity}");
            for (long c = start; c < start + count; c++)
                Assert.False(used.Contains(c), $"{op}: cluster {c} handed out while in use");
            // A run goes on until the request, a used cluster or the capacity stops it.
            Assert.True(count == op.Count || start + count == s.Capacity || used.Contains(start + count),
                $"{op}: run {start}+{count} stopped before a free cluster");
            Assert.False(start >= highWater && holes.Count > 0, $"{op}: grew the file to {start} while {holes.Count} holes were free");
            Assert.True(expected == start, $"{op}: allocated {start}, next fit from cursor {cursor} gives {expected}");
            // Fresh only when no cluster of the run ever held bytes; a run past everything that did is fresh.
            Assert.True((start >= freshFrom) == fresh, $"{op}: run {start}+{count} reported fresh={fresh}, clusters below {freshFrom} may hold bytes");

            for (long c = start; c < start + count; c++)
            {
                used.Add(c);
                holes.Remove(c);
            }
            freshFrom = Math.Max(freshFrom, start + count);
            highWater = Math.Max(highWater, start + count);
            cursor = start + count;
            Assert.Equal(highWater, a.HighWater);
            Assert.Equal(used.Count, a.UsedCount);
            Assert.Equal(holes.Count, a.FreeBelowHighWater);
        }

        for (long c = 0; c < highWater + 130; c++)
            Assert.True(used.Contains(c) == a.IsUsed(c), $"cluster {c}: model {(used.Contains(c) ? "used" : "free")}");
    }

    private static long FirstHole(SortedSet<long> holes, long from)
    {
        if (holes.Count == 0 || from > holes.Max) return -1;
        var view = holes.GetViewBetween(from, holes.Max);
        return view.Count == 0 ? -1 : view.Min;
    }
}
