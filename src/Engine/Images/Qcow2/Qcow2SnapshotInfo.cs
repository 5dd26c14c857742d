namespace CowDisk.Engine.Images.Qcow2;

/// <summary>An internal snapshot of a qcow2 image as listed in its snapshot table.</summary>
/// <param name="Id">The unique id string (qemu numbers them "1", "2", ...).</param>
/// <param name="VirtualSize">The disk size when the snapshot was taken (the image's size for old entries without it).</param>
/// <param name="VmStateSize">Bytes of saved VM state (0 for a disk-only snapshot).</param>
public sealed record Qcow2SnapshotInfo(string Id, string Name, long VirtualSize, DateTime CreatedUtc, long VmStateSize);
