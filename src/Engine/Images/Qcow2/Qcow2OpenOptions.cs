namespace CowDisk.Engine.Images.Qcow2;

/// <summary>How <see cref="Qcow2Image.Open"/> opens a qcow2 image (always read-only).</summary>
public sealed record Qcow2OpenOptions
{
    /// <summary>32 MiB of L2 tables: 256 GiB of guest disk with 64K clusters, whatever the image's size.</summary>
    public const long DefaultL2CacheBytes = 32L << 20;

    /// <summary>Read this internal snapshot (by name, else by id): its L1 table and its virtual size.</summary>
    public string? Snapshot { get; init; }
    /// <summary>0 for the image named by the user, 1 for its backing file, and so on.</summary>
    public int Depth { get; init; }
    /// <summary>The images above this one in the backing chain (real paths), to report a loop as a loop.</summary>
    public IReadOnlyList<string> Chain { get; init; } = [];
    /// <summary>
    /// Follow any backing file name: absolute, leading out of the image's folder with '..', or through a symlink
    /// out of it. Off by default: a downloaded image must not make us read an arbitrary host file.
    /// </summary>
    public bool AllowAnyBackingPath { get; init; }
    /// <summary>Most bytes of L2 tables kept in memory (least recently used ones are dropped); at least one table is kept.</summary>
    public long L2CacheBytes { get; init; } = DefaultL2CacheBytes;
}
