namespace CowDisk.Engine.Snapshots;

/// <summary>An image created from a snapshot (its backing is IMAGE@SNAPSHOT): the snapshot cannot be deleted while it exists.</summary>
/// <param name="Path">The clone's data file, absolute.</param>
/// <param name="Epoch">The epoch of the snapshot it reads.</param>
/// <param name="RelativePath">The same, relative to the image's folder: found again when both are moved together.</param>
public sealed record CloneRef(Guid Id, string Path, uint Epoch, string? RelativePath = null);
