namespace CowDisk.Engine.Images;

/// <summary>Where a run of the virtual disk reads from, as `cowdisk map` shows it.</summary>
public enum MapSource
{
    /// <summary>A data cluster of this image that no snapshot reads.</summary>
    Own,
    /// <summary>A data cluster this image shares with a snapshot (copied before it is overwritten).</summary>
    Shared,
    /// <summary>Reads as zeros: discarded or zeroed, stored as such.</summary>
    Zero,
    /// <summary>Not mapped here: read from the base image (Depth says which layer).</summary>
    Base,
    /// <summary>Not mapped anywhere: reads as zeros.</summary>
    Unallocated,
}

/// <summary>A run of the virtual disk with one source, like a line of `qemu-img map`.</summary>
/// <param name="Depth">0 for this image, 1 for its base, and so on.</param>
/// <param name="FileOffset">Byte offset of the run's data in <paramref name="File"/>, for data runs.</param>
public sealed record MapRun(long Start, long Length, MapSource Source, int Depth, long? FileOffset, string? File);
