namespace CowDisk.Engine.Metadata;

/// <summary>The image document: identity and geometry (checked against the data-file header), backing, state.</summary>
public sealed record ImageRecord
{
    public required Guid ImageId { get; init; }
    public required int ClusterSize { get; init; }
    public required long VirtualSize { get; init; }
    /// <summary>As the user gave it; a relative path is relative to the image's folder.</summary>
    public string? BackingFile { get; init; }
    public string? BackingFormat { get; init; }
    /// <summary>The id of the cowdisk image the base was at creation, checked at every open (null: a raw base, or older images).</summary>
    public Guid? BackingImageId { get; init; }
    /// <summary>For a base IMAGE@SNAPSHOT: the snapshot's epoch, so a snapshot deleted and made again under the same name is not taken for it.</summary>
    public long? BackingEpoch { get; init; }
    /// <summary>Set when the image was closed cleanly; cleared while it is open for writing.</summary>
    public bool Clean { get; init; } = true;
    /// <summary>Birth epoch given to new extents; snapshots freeze epochs below it.</summary>
    public uint Epoch { get; init; }
    /// <summary>The next epoch number to hand out (epochs are never reused); 0 in images stored before snapshots: Epoch + 1.</summary>
    public uint NextEpoch { get; init; }
    public DateTime CreatedUtc { get; init; }
    /// <summary>A block device holding the extents instead of the data file (absolute path), or null.</summary>
    public string? DataDevice { get; init; }
}
