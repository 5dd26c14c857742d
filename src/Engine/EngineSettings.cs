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

    internal ResponderSettings Responder => new() { CommitIntervalMs = CommitIntervalMs, CommitMaxDirtyChunks = CommitMaxDirtyChunks };
}
