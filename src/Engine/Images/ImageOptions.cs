using CowDisk.Format.Image;

namespace CowDisk.Engine.Images;

public sealed record ImageCreateOptions
{
    /// <summary>Virtual size in bytes; 0 takes the backing image's size.</summary>
    public long Size { get; init; }
    public int ClusterSize { get; init; } = ClusterGeometry.DefaultClusterSize;
    /// <summary>A read-only base: raw, qcow2 or cowdisk. Relative paths are relative to the new image's folder.</summary>
    public string? BackingPath { get; init; }
    /// <summary>
    /// The base's format as the user named it: "raw" reads it raw whatever its first bytes say; another must match
    /// the probe. Null: probed (raw only when nothing else matches). Recorded either way and used at every open.
    /// </summary>
    public string? BackingFormat { get; init; }
    /// <summary>Replace an existing image at the path (and reuse a data device that holds another image's extents).</summary>
    public bool Force { get; init; }
    /// <summary>A block device to hold the extents; the data file then holds only the header.</summary>
    public string? DataDevice { get; init; }
    /// <summary>The new image's id (a clone registers it with its snapshot before it exists); new when null.</summary>
    internal Guid? ImageId { get; init; }
}

public sealed record ImageOpenOptions
{
    public bool ReadOnly { get; init; }
    public EngineSettings Settings { get; init; } = new();
    /// <summary>Open this snapshot's read-only view instead of the live disk (requires ReadOnly).</summary>
    public string? Snapshot { get; init; }
    /// <summary>Where the image's files live; the host file system unless a test simulates power loss.</summary>
    internal Storage.IStorage? Storage { get; init; }
}
