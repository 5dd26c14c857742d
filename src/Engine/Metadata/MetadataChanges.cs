using CowDisk.Engine.Snapshots;

namespace CowDisk.Engine.Metadata;

/// <summary>Everything one metadata commit writes, as one LiteDB transaction.</summary>
internal sealed class MetadataChanges
{
    public static MetadataChanges None => new();

    /// <summary>Map chunks to replace: their packed extents, or null when the chunk maps nothing any more.</summary>
    public List<(long Chunk, byte[]? Extents)> Chunks { get; init; } = new();
    /// <summary>Dead-extent chunks to replace: packed rows, or null when none are left.</summary>
    public List<(long Chunk, byte[]? Rows)> Dead { get; init; } = new();
    /// <summary>Layer pages to replace: packed rows, or null when none are left.</summary>
    public List<(long Page, byte[]? Rows)> Layers { get; init; } = new();
    public List<SnapshotInfo> SnapshotsAdded { get; init; } = new();
    public List<SnapshotInfo> SnapshotsRemoved { get; init; } = new();
    public List<(uint Epoch, uint? Parent)> EpochsAdded { get; init; } = new();
    public List<uint> EpochsRemoved { get; init; } = new();
    public List<CloneRef> ClonesAdded { get; init; } = new();
    public List<CloneRef> ClonesRemoved { get; init; } = new();
    /// <summary>The mapping journal entry of this commit (the runs that changed), or null.</summary>
    public (long Sequence, byte[] Records)? Journal { get; set; }
    /// <summary>The chunks written here hold everything the journal said: delete every journal entry.</summary>
    public bool FoldJournal { get; set; }
    /// <summary>The image document to write, or null to leave it.</summary>
    public ImageRecord? Image { get; set; }

    public bool IsEmpty => Chunks.Count == 0 && Journal is null && !FoldJournal && Dead.Count == 0 && Layers.Count == 0 && SnapshotsAdded.Count == 0 && SnapshotsRemoved.Count == 0 &&
                           EpochsAdded.Count == 0 && EpochsRemoved.Count == 0 && ClonesAdded.Count == 0 && ClonesRemoved.Count == 0 &&
                           Image is null;
}
