namespace CowDisk.Engine.Images;

/// <summary>What `cowdisk check` found. Exit codes follow qemu-img check: 0 clean, 2 corruption, 3 leaks only.</summary>
public sealed record CheckReport
{
    public required string Path { get; init; }
    /// <summary>Corruptions: each stops the image from being trusted (a cluster mapped twice, a mapping outside the file, …).</summary>
    public List<string> Corruptions { get; init; } = new();
    /// <summary>Clusters holding host space that no mapping and no snapshot references (harmless; --repair punches them).</summary>
    public long LeakedClusters { get; set; }
    public long LeaksFixed { get; set; }
    /// <summary>Of the leaks: clusters of dead extents that no snapshot reads any more (not repaired by --repair).</summary>
    public long UnreadSnapshotClusters { get; set; }
    public long DataClusters { get; set; }
    public long SnapshotOnlyClusters { get; set; }
    public long FreeClusters { get; set; }
    public int Snapshots { get; set; }
    public long ImageEndOffset { get; set; }
    public int ClusterSize { get; set; }
    /// <summary>Clusters of the virtual disk (qemu-img check's total-clusters).</summary>
    public long TotalClusters { get; set; }

    public int ExitCode => Corruptions.Count > 0 ? 2 : LeakedClusters > LeaksFixed ? 3 : 0;
}
