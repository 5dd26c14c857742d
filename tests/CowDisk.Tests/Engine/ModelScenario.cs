using FsCheck;
using FsCheck.Fluent;

namespace CowDisk.Tests.Engine;

/// <summary>FuaWrite: a write with WriteFlags.Fua, durable when it returns (without a flush of the rest).</summary>
public enum OpKind { Write, Read, Discard, Zero, Flush, Reopen, Snapshot, DeleteSnapshot, Revert, Clone, FuaWrite }

public sealed record Op(OpKind Kind, long Offset, int Length, byte Seed, int BufferOffset)
{
    public override string ToString() => Kind switch
    {
        OpKind.Flush or OpKind.Reopen or OpKind.Snapshot => Kind.ToString(),
        OpKind.DeleteSnapshot or OpKind.Revert or OpKind.Clone => $"{Kind}(#{Seed})",
        _ => $"{Kind}({Offset},{Length}{(Kind is OpKind.Write or OpKind.FuaWrite ? $",seed {Seed}" : "")})",
    };
}

public enum BaseKind { None, Raw, CowDisk }

public sealed record ModelScenario(int ClusterSize, long VirtualSize, BaseKind Base, long BaseSize, Op[] Ops, bool MappingCache)
{
    public override string ToString() =>
        $"cluster {ClusterSize}, size {VirtualSize}, base {Base} ({BaseSize}), cache {MappingCache}: {string.Join(" ", Ops.Select(o => o.ToString()))}";

    /// <param name="sectorAligned">Offsets and lengths in whole 4 KiB sectors, buffers mostly aligned (bufferOffset
    /// 0): with direct I/O the data file's runs then go to the file many at once, from the buffer or through the
    /// bounce buffer.</param>
    public static Gen<ModelScenario> Generator(bool? mappingCache = null, bool sectorAligned = false) =>
        from clusterShift in Gen.Choose(12, 16)
        let cs = 1 << clusterShift
        from clusters in Gen.Choose(1, 24)
        from remainder in sectorAligned ? Gen.Elements(0, 0, 4096) : Gen.Elements(0, 0, 1, 511, 4095, cs / 2 + 3)
        let size = (long)clusters * cs + (remainder % cs)
        from baseKind in Gen.Elements(BaseKind.None, BaseKind.Raw, BaseKind.CowDisk)
        from baseFraction in Gen.Elements(1.0, 1.0, 0.5, 0.33)
        from cache in mappingCache is { } c ? Gen.Constant(c) : Gen.Elements(true, false)
        from ops in Gen.ListOf(sectorAligned ? SectorOpGen(size, cs) : OpGen(size, cs)).Select(l => l.ToArray())
        select new ModelScenario(cs, size, baseKind, Math.Max(1, (long)(size * baseFraction)), ops, cache);

    /// <summary>
    /// 4K clusters on a disk of two to four 4096-block map chunks, with offsets drawn near the chunk edges:
    /// writes, discards and reads that start, end or cross exactly at block 4095/4096.
    /// </summary>
    public static Gen<ModelScenario> ChunkEdgeGenerator() =>
        from chunks in Gen.Choose(2, 4)
        from remainder in Gen.Elements(0, 1, 4095)
        let cs = 4096
        let size = (long)chunks * 4096 * cs + remainder
        from baseKind in Gen.Elements(BaseKind.None, BaseKind.Raw)
        from cache in Gen.Elements(true, false)
        from ops in Gen.ListOf(EdgeOpGen(size, cs, chunks)).Select(l => l.Take(30).ToArray())
        select new ModelScenario(cs, size, baseKind, size / 3, ops, cache);

    /// <summary>
    /// Layered blocks: clusters with subclusters (8 KiB to 2 MiB), snapshots often, and mostly small writes that
    /// start and end inside, at and across subcluster edges, so first writes after a snapshot layer, later ones
    /// extend or fill the layer, and layered blocks are snapshotted, copied, discarded, reverted and cloned.
    /// </summary>
    public static Gen<ModelScenario> LayerGenerator() =>
        from clusterShift in Gen.Elements(13, 14, 16, 16, 17, 19, 21)
        let cs = 1 << clusterShift
        from clusters in Gen.Choose(1, 12)
        from remainder in Gen.Elements(0, 0, 1, 4095, 4097, cs / 2 + 3)
        let size = (long)clusters * cs + (remainder % cs)
        from baseKind in Gen.Elements(BaseKind.None, BaseKind.None, BaseKind.Raw)
        from cache in Gen.Elements(true, false)
        from ops in Gen.ListOf(LayerOpGen(size, cs)).Select(l => l.Take(40).ToArray())
        select new ModelScenario(cs, size, baseKind, size / 2 + 1, ops, cache);

    private static Gen<Op> LayerOpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (12, Gen.Constant(OpKind.Write)), (4, Gen.Constant(OpKind.Read)), (1, Gen.Constant(OpKind.Discard)),
            (1, Gen.Constant(OpKind.Zero)), (2, Gen.Constant(OpKind.Flush)), (2, Gen.Constant(OpKind.Reopen)),
            (4, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)),
            (1, Gen.Constant(OpKind.Clone)), (1, Gen.Constant(OpKind.FuaWrite)))
        let ss = Math.Max(4096, cs / 64)
        from block in Gen.Choose(0, (int)((size - 1) / cs))
        from sub in Gen.Choose(0, cs / ss - 1)
        from delta in Gen.Elements(0, 0, 1, 511, ss - 1, -1, -512)
        let start = Math.Clamp((long)block * cs + (long)sub * ss + delta, 0, size - 1)
        from length in Gen.Elements(1, 512, ss, ss, ss + 1, 2 * ss - 1, 3 * ss, cs, cs + ss)
        from seed in Gen.Choose(1, 255)
        from bufferOffset in Gen.Elements(0, 3)
        select new Op(kind, start, (int)Math.Min(length, size - start), (byte)seed, bufferOffset);

    private static Gen<Op> EdgeOpGen(long size, int cs, int chunks) =>
        from kind in Gen.Frequency(
            (8, Gen.Constant(OpKind.Write)), (5, Gen.Constant(OpKind.Read)), (3, Gen.Constant(OpKind.Discard)),
            (2, Gen.Constant(OpKind.Zero)), (2, Gen.Constant(OpKind.Flush)), (2, Gen.Constant(OpKind.Reopen)),
            (2, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)))
        from edge in Gen.Choose(1, chunks - 1)
        from blockDelta in Gen.Choose(-3, 2)
        from byteDelta in Gen.Elements(0, 0, 1, 511, cs - 1)
        let start = Math.Clamp((long)(edge * 4096 + blockDelta) * cs + byteDelta, 0, size - 1)
        from length in Gen.Elements(1, cs, cs + 1, 2 * cs, 5 * cs - 3, 9 * cs)
        from seed in Gen.Choose(1, 255)
        from bufferOffset in Gen.Elements(0, 5)
        select new Op(kind, start, (int)Math.Min(length, size - start), (byte)seed, bufferOffset);

    /// <summary>Whole sectors, often several clusters long, so that one request spans runs scattered over the data file.</summary>
    private static Gen<Op> SectorOpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (10, Gen.Constant(OpKind.Write)), (8, Gen.Constant(OpKind.Read)), (1, Gen.Constant(OpKind.Discard)),
            (1, Gen.Constant(OpKind.Zero)), (2, Gen.Constant(OpKind.Flush)), (1, Gen.Constant(OpKind.Reopen)),
            (2, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)),
            (1, Gen.Constant(OpKind.FuaWrite)))
        from sector in Gen.Choose(0, (int)((size - 1) / 4096))
        from sectors in Gen.Elements(1, 2, cs / 4096, cs / 4096 + 1, 3 * cs / 4096, 8 * cs / 4096 + 2)
        from seed in Gen.Choose(1, 255)
        from bufferOffset in Gen.Elements(0, 0, 3)   // 3: the runs go together through the bounce buffer
        let start = sector * 4096L
        select new Op(kind, start, (int)Math.Min(sectors * 4096L, size - start), (byte)seed, bufferOffset);

    private static Gen<Op> OpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (10, Gen.Constant(OpKind.Write)), (6, Gen.Constant(OpKind.Read)), (2, Gen.Constant(OpKind.Discard)),
            (2, Gen.Constant(OpKind.Zero)), (2, Gen.Constant(OpKind.Flush)), (1, Gen.Constant(OpKind.Reopen)),
            (2, Gen.Constant(OpKind.Snapshot)), (1, Gen.Constant(OpKind.DeleteSnapshot)), (1, Gen.Constant(OpKind.Revert)),
            (1, Gen.Constant(OpKind.Clone)))
        from aligned in Gen.Elements(true, false)
        from offset in Gen.Choose(0, (int)Math.Min(int.MaxValue, size - 1))
        let start = aligned ? offset / cs * (long)cs : offset
        from length in Gen.Choose(1, 3 * cs)
        from seed in Gen.Choose(1, 255)
        from bufferOffset in Gen.Elements(0, 1, 13)
        select new Op(kind, start, (int)Math.Min(length, size - start), (byte)seed, bufferOffset);
}
