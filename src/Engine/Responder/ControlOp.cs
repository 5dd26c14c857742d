using CowDisk.Engine.Snapshots;

namespace CowDisk.Engine.Responder;

internal enum ControlKind { CreateSnapshot, DeleteSnapshot, RevertSnapshot, ListSnapshots, AddClone, Preallocate, ExportView, DropUnreadDeadExtents, Invoke }

/// <summary>
/// A snapshot change handed to the responder thread, which owns the mappings. The target posts a CONTROL_REQ in
/// ring order (after every write acknowledged before it) and the responder answers once the change is durable.
/// </summary>
internal sealed class ControlOp
{
    public required ControlKind Kind { get; init; }
    public required string Name { get; init; }
    public DateTime CreatedUtc { get; init; } = DateTime.UtcNow;
    /// <summary>The snapshot created, deleted or reverted to.</summary>
    public SnapshotInfo? Result { get; set; }
    /// <summary>Why the operation was refused (nothing changed), or null.</summary>
    public string? Refused { get; set; }
    /// <summary>ListSnapshots: the snapshots, oldest first, with the bytes each alone holds.</summary>
    public List<SnapshotInfo>? List { get; set; }
    /// <summary>AddClone: the image being made from the snapshot.</summary>
    public CloneRef? Clone { get; init; }
    /// <summary>ExportView: the snapshot's mappings and layers (<see cref="Mapping.ViewExport"/>).</summary>
    public byte[]? Export { get; set; }
    public uint ExportEpoch { get; set; }
    /// <summary>Invoke: a read of the mappings run on the responder thread, which owns them (map, diff of a running image).</summary>
    public Action? Body { get; init; }
    /// <summary>Preallocate: the blocks to map.</summary>
    public long FirstBlock { get; init; }
    public long BlockCount { get; init; }
}
