namespace CowDisk.Engine.Images;

/// <summary>What `cowdisk info` shows about one layer of an image chain.</summary>
public sealed record ImageInfo
{
    public required string Path { get; init; }
    public required string Format { get; init; }
    /// <summary>The on-disk format's version where it has one that matters (qcow2: 2 or 3).</summary>
    public int? FormatVersion { get; init; }
    public required long VirtualSize { get; init; }
    public int? ClusterSize { get; init; }
    /// <summary>Bytes of the virtual disk this layer maps (data extents).</summary>
    public long? AllocatedBytes { get; init; }
    /// <summary>Bytes the layer's files occupy on the host.</summary>
    public long DiskBytes { get; init; }
    public Guid? ImageId { get; init; }
    public bool? Clean { get; init; }
    /// <summary>Another process has it open for writing; only header facts are shown.</summary>
    public bool InUse { get; init; }
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
    public required IReadOnlyList<string> Files { get; init; }
    /// <summary>The block device holding the extents (--data-device), or null.</summary>
    public string? DataDevice { get; init; }
    public ImageInfo? Backing { get; init; }
    /// <summary>The snapshot this view shows (IMAGE@SNAPSHOT), or null for the live disk.</summary>
    public string? Snapshot { get; init; }
    /// <summary>The image's snapshots, oldest first.</summary>
    public IReadOnlyList<Snapshots.SnapshotInfo>? Snapshots { get; init; }
}
