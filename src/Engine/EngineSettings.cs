using CowDisk.Engine.Responder;

namespace CowDisk.Engine;

/// <summary>Tunables of the engine, bound from the "Engine" configuration section (see docs/SETTINGS.md).</summary>
public sealed record EngineSettings
{
    /// <summary>The target caches the responder's answers; off = every block asks the ring (the seed's no-cache mode).</summary>
    public bool MappingCache { get; init; } = true;
    /// <summary>Slots per ring (power of two, 64..65536).</summary>
    public int RingSlots { get; init; } = 256;
    /// <summary>Map requests that may wait for an answer at once.</summary>
    public int MaxInFlightMaps { get; init; } = 256;
    public int CommitIntervalMs { get; init; } = 1000;
    public int CommitMaxDirtyChunks { get; init; } = 256;
    /// <summary>Journal entries (commits) after which the next commit rewrites the changed map chunks whole and empties the journal.</summary>
    public int JournalFoldEntries { get; init; } = 4096;
    /// <summary>
    /// Open the data file with O_DIRECT: data bypasses the host page cache (no double caching under a guest or a
    /// file system that caches itself). Unaligned I/O goes through an aligned bounce buffer.
    /// </summary>
    public bool DirectIo { get; init; }
    /// <summary>
    /// The data file grows ahead of allocation in steps of this many MiB (fallocate), so new clusters are
    /// overwrites for the host file system, not allocations under its inode lock; 0 = grow only by writing.
    /// The unused tail is cut off at a clean close.
    /// </summary>
    public int GrowStepMiB { get; init; } = 64;
    /// <summary>
    /// Adaptive busy polling of the attach server (/dev/fuse): one worker spins up to this many microseconds for
    /// its next request, and for its direct-I/O transfers, before it sleeps; 0 = off. See docs/SETTINGS.md.
    /// </summary>
    public int PollMicroseconds { get; init; } = DefaultPollMicroseconds;
    public const int DefaultPollMicroseconds = 250;
    /// <summary>Follow a qcow2 base's backing file wherever its name points (absolute, or outside its folder); off by default.</summary>
    public bool AllowAnyBackingPath { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad value; called before an image is touched.</summary>
    public void Validate()
    {
        if (!Format.Ring.RingLayout.IsValidSlotCount(RingSlots))
            throw new ArgumentException($"Engine:RingSlots must be a power of two from {Format.Ring.RingLayout.MinSlots} to {Format.Ring.RingLayout.MaxSlots} (ring slots), not {RingSlots}");
        if (MaxInFlightMaps < 1 || MaxInFlightMaps > 65536) throw new ArgumentException($"Engine:MaxInFlightMaps must be 1..65536, not {MaxInFlightMaps}");
        if (CommitIntervalMs < 1) throw new ArgumentException($"Engine:CommitIntervalMs must be at least 1, not {CommitIntervalMs}");
        if (CommitMaxDirtyChunks < 1) throw new ArgumentException($"Engine:CommitMaxDirtyChunks must be at least 1, not {CommitMaxDirtyChunks}");
        if (GrowStepMiB is < 0 or > 65536) throw new ArgumentException($"Engine:GrowStepMiB must be 0..65536, not {GrowStepMiB}");
        if (PollMicroseconds is < 0 or > 100_000) throw new ArgumentException($"Engine:PollMicroseconds must be 0..100000, not {PollMicroseconds}");
        if (JournalFoldEntries < 1) throw new ArgumentException($"Engine:JournalFoldEntries must be at least 1, not {JournalFoldEntries}");
    }

    internal ResponderSettings Responder => new()
    {
        CommitIntervalMs = CommitIntervalMs, CommitMaxDirtyChunks = CommitMaxDirtyChunks, JournalFoldEntries = JournalFoldEntries,
        GrowStepBytes = (long)GrowStepMiB << 20,
    };
}
