using System.Numerics;
using CowDisk.Format.Image;

namespace CowDisk.Engine.Allocation;

/// <summary>
/// Free space of the data file as a bitmap of physical clusters (set = in use). Next-fit from a cursor, so
/// sequential writes get consecutive clusters and runs stay long. Clusters past the end of the file are free
/// and unbounded: allocating there grows the file. Owned by the responder thread; not thread-safe.
/// Freed clusters go through <see cref="Release"/> only once the change that freed them is durable.
/// </summary>
internal sealed class ClusterAllocator
{
    private ulong[] _bits = new ulong[64];
    private long _cursor = ClusterGeometry.FirstDataCluster;
    // Clusters at or past this were never part of the data file, so they read as zeros (a hole or past EOF).
    private long _freshFrom;

    /// <summary>Clusters that can exist at all: a data device's size; unbounded for a file (it grows).</summary>
    public long Capacity { get; }

    public ClusterAllocator(long dataFileClusters, long capacity = long.MaxValue)
    {
        _freshFrom = Math.Max(dataFileClusters, ClusterGeometry.FirstDataCluster);
        Capacity = capacity;
    }

    /// <summary>One past the highest cluster ever marked used (the data file's extent in clusters).</summary>
    public long HighWater { get; private set; } = ClusterGeometry.FirstDataCluster;
    public long UsedCount { get; private set; }

    public bool IsUsed(long cluster) => cluster < (long)_bits.Length * 64 && (_bits[cluster >> 6] & (1UL << (int)(cluster & 63))) != 0;

    /// <summary>Marks a cluster used while loading mappings; false if it already was (a double mapping).</summary>
    public bool TryMarkUsed(long cluster)
    {
        if (cluster < ClusterGeometry.FirstDataCluster) return false;
        EnsureCapacity(cluster + 1);
        ref ulong word = ref _bits[cluster >> 6];
        ulong bit = 1UL << (int)(cluster & 63);
        if ((word & bit) != 0) return false;
        word |= bit;
        UsedCount++;
        HighWater = Math.Max(HighWater, cluster + 1);
        return true;
    }

    /// <summary>
    /// Allocates 1..maxCount consecutive clusters; returns the first and sets count. Fresh: none of them was
    /// ever written, so they already read as zeros and need no zero fill. Returns -1 when no cluster is free
    /// within <see cref="Capacity"/> (the data device is full).
    /// </summary>
    public long Allocate(int maxCount, out int count, out bool fresh)
    {
        long start = -1;
        if (FreeBelowHighWater > 0)   // without holes, skip the scans: appending is the only choice
        {
            start = FindFree(_cursor);
            if (start < 0) start = FindFree(ClusterGeometry.FirstDataCluster);
        }
        if (start < 0) start = HighWater;   // everything below the high water is in use: grow the file
        count = 0;
        fresh = false;
        if (start >= Capacity) return -1;
        while (count < maxCount && start + count < Capacity && !IsUsed(start + count))
        {
            TryMarkUsed(start + count);
            count++;
        }
        _cursor = start + count;
        fresh = start >= _freshFrom;
        _freshFrom = Math.Max(_freshFrom, start + count);
        return start;
    }

    /// <summary>The data file was cut back to <paramref name="clusters"/> (at least the high water): past it, everything reads as zeros again.</summary>
    public void FileCut(long clusters)
    {
        if (clusters < HighWater) throw new InvalidOperationException($"cut to {clusters} clusters, below the high water {HighWater}");
        _freshFrom = Math.Min(_freshFrom, Math.Max(clusters, ClusterGeometry.FirstDataCluster));
    }

    public void Release(long cluster, int count)
    {
        for (long c = cluster; c < cluster + count; c++)
        {
            if (!IsUsed(c)) throw new Devices.CorruptImageException($"cluster {c} freed twice");
            _bits[c >> 6] &= ~(1UL << (int)(c & 63));
            UsedCount--;
        }
        if (cluster < _cursor) _cursor = cluster;
    }

    /// <summary>Free clusters below the high water: holes in the data file.</summary>
    public long FreeBelowHighWater => HighWater - ClusterGeometry.FirstDataCluster - UsedCount;

    private long FindFree(long from)
    {
        long limit = HighWater;
        for (long c = Math.Max(from, ClusterGeometry.FirstDataCluster); c < limit;)
        {
            ulong word = ~_bits[c >> 6] & (~0UL << (int)(c & 63));
            if (word != 0)
            {
                long found = (c & ~63L) + BitOperations.TrailingZeroCount(word);
                return found < limit ? found : -1;
            }
            c = (c & ~63L) + 64;
        }
        return -1;
    }

    private void EnsureCapacity(long clusters)
    {
        long words = (clusters + 63) >> 6;
        if (words <= _bits.Length) return;
        Array.Resize(ref _bits, (int)Math.Max(words, _bits.Length * 2L));
    }
}
