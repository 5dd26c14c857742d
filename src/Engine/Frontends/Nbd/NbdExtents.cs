using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>Block status descriptors: base:allocation from the mapping, qemu:dirty-bitmap from the snapshot history.</summary>
internal static class NbdExtents
{
    /// <summary>At most this much of the disk per BLOCK_STATUS (clients ask again past the answer's end).</summary>
    public const long MaxSpan = 1L << 32;

    /// <summary>Descriptors (length, status) for [start, end): data 0; unallocated, discarded or zero: hole|zero.</summary>
    public static void Allocation(IBlockDevice device, long start, long end, List<(uint Length, uint Flags)> into)
    {
        end = Math.Min(end, start + MaxSpan - 4096);
        List<MapRun> runs = device switch
        {
            CowImage image => image.MapRange(start, end),
            _ => BaseImage.MapOf(device, start, end, 0),   // a snapshot view, a qcow2, a raw file; all data where a device cannot tell
        };
        foreach (var run in runs)
        {
            uint flags = run.Source is MapSource.Zero or MapSource.Unallocated ? (uint)(NbdAllocationState.Hole | NbdAllocationState.Zero) : 0;
            Add(into, run.Length, flags);
        }
    }

    /// <summary>Descriptors for [start, end) from sorted, disjoint changed ranges: dirty (1) inside them, clean (0) outside.</summary>
    public static void Dirty(IReadOnlyList<(long Offset, long Length)> changed, long start, long end, List<(uint Length, uint Flags)> into)
    {
        end = Math.Min(end, start + MaxSpan - 4096);
        int lo = 0, hi = changed.Count;
        while (lo < hi)   // first range that ends after start
        {
            int mid = (lo + hi) >>> 1;
            if (changed[mid].Offset + changed[mid].Length <= start) lo = mid + 1; else hi = mid;
        }
        long at = start;
        for (int i = lo; at < end && into.Count < NbdLimits.MaxExtentsPerChunk - 2; i++)
        {
            long dirtyStart = i < changed.Count ? Math.Max(at, changed[i].Offset) : end;
            if (dirtyStart >= end) { Add(into, end - at, 0); at = end; break; }
            if (dirtyStart > at) Add(into, dirtyStart - at, 0);
            long dirtyEnd = Math.Min(end, changed[i].Offset + changed[i].Length);
            Add(into, dirtyEnd - dirtyStart, 1);
            at = dirtyEnd;
        }
    }

    private static void Add(List<(uint Length, uint Flags)> into, long length, uint flags)
    {
        if (length <= 0) return;
        if (into.Count > 0 && into[^1].Flags == flags && into[^1].Length + length <= uint.MaxValue - 4095)
            into[^1] = ((uint)(into[^1].Length + length), flags);
        else into.Add(((uint)length, flags));
    }
}
