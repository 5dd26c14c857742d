namespace CowDisk.Engine.Responder;

/// <summary>When the responder group-commits mappings without being asked by a flush.</summary>
public sealed record ResponderSettings
{
    /// <summary>Commit at most this long after the first uncommitted mapping (ms).</summary>
    public int CommitIntervalMs { get; init; } = 1000;
    /// <summary>Commit once this many map chunks (4096 blocks each) are dirty.</summary>
    public int CommitMaxDirtyChunks { get; init; } = 256;
    /// <summary>Fold the mapping journal into whole chunks once it holds this many entries.</summary>
    public int JournalFoldEntries { get; init; } = 4096;
    /// <summary>Grow the data file ahead of allocation by this much (0 = only by writing).</summary>
    public long GrowStepBytes { get; init; }
}
