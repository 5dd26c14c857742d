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
    /// <summary>Whole clusters a file of this length covers, counting a partial last one.</summary>
    public long ClustersIn(long fileLength) => (fileLength + ClusterSize - 1) >> ClusterShift;
}
