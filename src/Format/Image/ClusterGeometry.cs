using System.Numerics;

namespace CowDisk.Format.Image;

/// <summary>
/// All address arithmetic of an image: virtual bytes to blocks, physical clusters to data-file offsets.
/// A virtual block and a physical cluster have the same size (the image's cluster size).
/// </summary>
public readonly struct ClusterGeometry
{
    public const int MinClusterSize = 4096;
    public const int MaxClusterSize = 2 * 1024 * 1024;
    public const int DefaultClusterSize = 64 * 1024;
    /// <summary>2^40 clusters addressable by a mapping entry; capped at 64 TiB of virtual size.</summary>
    public const long MaxVirtualSize = 64L << 40;
    /// <summary>Physical cluster 0 holds the header.</summary>
    public const long FirstDataCluster = 1;

    public int ClusterSize { get; }
    public int ClusterShift { get; }
    public long VirtualSize { get; }
    /// <summary>Virtual blocks, the last one possibly partial.</summary>
    public long BlockCount { get; }

    public ClusterGeometry(int clusterSize, long virtualSize)
    {
        if (!IsValidClusterSize((uint)clusterSize))
            throw new ArgumentOutOfRangeException(nameof(clusterSize), $"cluster size must be a power of two from 4K to 2M, not {clusterSize}");
        if (virtualSize <= 0 || virtualSize > MaxVirtualSize)
            throw new ArgumentOutOfRangeException(nameof(virtualSize), $"virtual size must be 1 byte to 64T, not {virtualSize}");
        ClusterSize = clusterSize;
        ClusterShift = BitOperations.Log2((uint)clusterSize);
        VirtualSize = virtualSize;
        BlockCount = (virtualSize + clusterSize - 1) >> ClusterShift;
    }

    public static bool IsValidClusterSize(uint size) =>
        size >= MinClusterSize && size <= MaxClusterSize && BitOperations.IsPow2(size);

    public long BlockOf(long virtualOffset) => virtualOffset >> ClusterShift;
    public int OffsetInBlock(long virtualOffset) => (int)(virtualOffset & (ClusterSize - 1));
    public long BlockStart(long block) => block << ClusterShift;
    /// <summary>Bytes of the block that lie inside the virtual disk (the last block may be short).</summary>
    public int BlockLength(long block) => (int)Math.Min(ClusterSize, VirtualSize - BlockStart(block));
    public long ClusterOffset(long physicalCluster) => physicalCluster << ClusterShift;
    // ---- subclusters: the unit a first write after a snapshot copies (docs/FORMAT.md §9.6) ----

    /// <summary>log2 of the subcluster size: 4 KiB, or cluster / 64 for clusters past 256 KiB (one 64-bit mask per block).</summary>
    public int SubclusterShift => Math.Max(12, ClusterShift - 6);
    public int SubclusterSize => 1 << SubclusterShift;
    /// <summary>Subclusters per block; under 2 (4 KiB clusters) a block is never layered.</summary>
    public int SubclustersPerBlock => ClusterSize >> SubclusterShift;
    public bool HasSubclusters => SubclustersPerBlock >= 2;

    /// <summary>The subclusters of a block that hold bytes of the disk (the last block may be short).</summary>
    public ulong FullMask(long block)
    {
        int n = (BlockLength(block) + SubclusterSize - 1) >> SubclusterShift;
        return n >= 64 ? ulong.MaxValue : (1UL << n) - 1;
    }

    /// <summary>The subclusters that bytes [inBlock, inBlock + length) of a block touch.</summary>
    public ulong SubclusterMask(int inBlock, int length)
    {
        if (length <= 0) return 0;
        int first = inBlock >> SubclusterShift, last = (inBlock + length - 1) >> SubclusterShift;
        ulong upTo = last >= 63 ? ulong.MaxValue : (1UL << (last + 1)) - 1;
        return upTo & ~((1UL << first) - 1);
    }

    /// <summary>
    /// How many bytes from inBlock (at most limit) lie in subclusters on the same side of mask as inBlock's, and
    /// which side (inMask): a layered block is read as such runs, each from its own cluster.
    /// </summary>
    public int SubclusterRun(ulong mask, int inBlock, int limit, out bool inMask)
    {
        int s = inBlock >> SubclusterShift;
        inMask = (mask >> s & 1) != 0;
        int end = (s + 1) << SubclusterShift;
        while (end < ClusterSize && ((mask >> (end >> SubclusterShift) & 1) != 0) == inMask) end += SubclusterSize;
        return Math.Min(limit, end - inBlock);
    }

    /// <summary>Whole clusters a file of this length covers, counting a partial last one.</summary>
    public long ClustersIn(long fileLength) => (fileLength + ClusterSize - 1) >> ClusterShift;
}
