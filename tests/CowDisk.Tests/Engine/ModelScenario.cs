using FsCheck;
using FsCheck.Fluent;

namespace CowDisk.Tests.Engine;

public enum OpKind { Write, Read, Discard, Zero, Flush, Reopen }

public sealed record Op(OpKind Kind, long Offset, int Length, byte Seed, int BufferOffset)
{
    public override string ToString() => Kind switch
    {
        OpKind.Flush or OpKind.Reopen => Kind.ToString(),
        _ => $"{Kind}({Offset},{Length}{(Kind == OpKind.Write ? $",seed {Seed}" : "")})",
    };
}

public enum BaseKind { None, Raw, CowDisk }

public sealed record ModelScenario(int ClusterSize, long VirtualSize, BaseKind Base, long BaseSize, Op[] Ops, bool MappingCache)
{
    public override string ToString() =>
        $"cluster {ClusterSize}, size {VirtualSize}, base {Base} ({BaseSize}), cache {MappingCache}: {string.Join(" ", Ops.Select(o => o.ToString()))}";

    public static Gen<ModelScenario> Generator(bool? mappingCache = null) =>
        from clusterShift in Gen.Choose(12, 16)
        let cs = 1 << clusterShift
        from clusters in Gen.Choose(1, 24)
        from remainder in Gen.Elements(0, 0, 1, 511, 4095, cs / 2 + 3)
        let size = (long)clusters * cs + (remainder % cs)
        from baseKind in Gen.Elements(BaseKind.None, BaseKind.Raw, BaseKind.CowDisk)
        from baseFraction in Gen.Elements(1.0, 1.0, 0.5, 0.33)
        from cache in mappingCache is { } c ? Gen.Constant(c) : Gen.Elements(true, false)
        from ops in Gen.ListOf(OpGen(size, cs)).Select(l => l.ToArray())
        select new ModelScenario(cs, size, baseKind, Math.Max(1, (long)(size * baseFraction)), ops, cache);

    private static Gen<Op> OpGen(long size, int cs) =>
        from kind in Gen.Frequency(
            (10, Gen.Constant(OpKind.Write)), (6, Gen.Constant(OpKind.Read)), (2, Gen.Constant(OpKind.Discard)),
            (2, Gen.Constant(OpKind.Zero)), (2, Gen.Constant(OpKind.Flush)), (1, Gen.Constant(OpKind.Reopen)))
        from aligned in Gen.Elements(true, false)
        from offset in Gen.Choose(0, (int)Math.Min(int.MaxValue, size - 1))
        let start = aligned ? offset / cs * (long)cs : offset
        from length in Gen.Choose(1, 3 * cs)
        from seed in Gen.Choose(1, 255)
        from bufferOffset in Gen.Elements(0, 1, 13)
        select new Op(kind, start, (int)Math.Min(length, size - start), (byte)seed, bufferOffset);
}
