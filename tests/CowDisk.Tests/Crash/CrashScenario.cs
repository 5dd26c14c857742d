using CowDisk.Tests.Engine;
using FsCheck;
using FsCheck.Fluent;

namespace CowDisk.Tests.Crash;

/// <summary>A workload, the engine's commit pacing, and where power is cut (storage operation numbers).</summary>
/// <param name="CrashPoints">Where power is cut, as fractions of the workload's storage operations.</param>
public sealed record CrashScenario(int ClusterSize, long VirtualSize, Op[] Ops, bool MappingCache, int CommitIntervalMs,
    double[] CrashPoints, int Seed, int CommitMaxDirtyChunks = 1)
{
    public override string ToString() =>
        $"cluster {ClusterSize}, size {VirtualSize}, cache {MappingCache}, commit every {CommitIntervalMs} ms or {CommitMaxDirtyChunks} dirty chunks, " +
        $"crash at [{string.Join(",", CrashPoints.Select(p => p.ToString("F3")))}], seed {Seed}: {string.Join(" ", Ops.Select(o => o.ToString()))}";

    public static Gen<CrashScenario> Generator() =>
        from clusterShift in Gen.Choose(12, 14)
        let cs = 1 << clusterShift
        from clusters in Gen.Choose(1, 24)
        from remainder in Gen.Elements(0, 0, 1, 511, cs / 2 + 3)
        let size = (long)clusters * cs + (remainder % cs)
        from cache in Gen.Elements(true, false)
        from interval in Gen.Elements(1, 5, 50, 100_000)
        from count in Gen.Choose(1, 24)
        from ops in Gen.ArrayOf(OpGen(size, cs), count)
        from points in Gen.ArrayOf(Gen.Choose(0, 1000).Select(p => p / 1000.0), 5)
        from seed in Gen.Choose(0, int.MaxValue)
        from dirty in Gen.Elements(1, 1 << 20)
        select new CrashScenario(cs, size, ops, cache, interval, points.Distinct().Order().ToArray(), seed, dirty);

    /// <summary>Layered blocks under power cuts: subclusters (16 to 64 KiB clusters), snapshots often, small writes.</summary>
    public static Gen<CrashScenario> LayerGenerator() =>
        from clusterShift in Gen.Choose(14, 16)
        let cs = 1 << clusterShift
        from clusters in Gen.Choose(1, 8)
        from remainder in Gen.Elements(0, 0, 4097)
        let size = (long)clusters * cs + (remainder % cs)
        from cache in Gen.Elements(true, false)
        from interval in Gen.Elements(1, 5, 50, 100_000)
        from count in Gen.Choose(2, 24)
        from ops in Gen.ArrayOf(LayerOpGen(size, cs), count)
        from points in Gen.ArrayOf(Gen.Choose(0, 1000).Select(p => p / 1000.0), 5)
        from seed in Gen.Choose(0, int.MaxValue)
        from dirty in Gen.Elements(1, 1 << 20)
        select new CrashScenario(cs, size, ops, cache, interval, points.Distinct().Order().ToArray(), seed, dirty);

    private static Gen<Op> LayerOpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (10, Gen.Constant(OpKind.Write)), (3, Gen.Constant(OpKind.FuaWrite)), (1, Gen.Constant(OpKind.Discard)),
            (3, Gen.Constant(OpKind.Flush)), (1, Gen.Constant(OpKind.Reopen)),
            (4, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)))
        from offset in Gen.Choose(0, (int)(size - 1))
        let start = offset / 4096 * 4096L + (offset % 3 == 0 ? offset % 4096 : 0)
        from length in Gen.Elements(1, 4096, 4096, 8192, 3 * 4096 + 5, cs)
        from seed in Gen.Choose(1, 255)
        select new Op(kind, Math.Min(start, size - 1), (int)Math.Min(length, size - Math.Min(start, size - 1)), (byte)seed, 0);

    private static Gen<Op> OpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (10, Gen.Constant(OpKind.Write)), (3, Gen.Constant(OpKind.FuaWrite)), (2, Gen.Constant(OpKind.Discard)),
            (2, Gen.Constant(OpKind.Zero)), (3, Gen.Constant(OpKind.Flush)), (1, Gen.Constant(OpKind.Reopen)),
            (2, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)))
        from aligned in Gen.Elements(true, false)
        from offset in Gen.Choose(0, (int)(size - 1))
        let start = aligned ? offset / cs * (long)cs : offset
        from length in Gen.Choose(1, 3 * cs)
        from seed in Gen.Choose(1, 255)
        select new Op(kind, start, (int)Math.Min(length, size - start), (byte)seed, 0);
}
