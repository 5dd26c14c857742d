namespace CowDisk.Engine.Frontends.Attach;

/// <summary>What `cowdisk attach` was asked to do.</summary>
public sealed record AttachRequest
{
    public required string Image { get; init; }
    public required string Name { get; init; }
    /// <summary>Create a new overlay beside the image, backed by it, and attach that.</summary>
    public bool Overlay { get; init; }
    public bool ReadOnly { get; init; }
    /// <summary>Serve this snapshot of the image (always read-only), from IMAGE@SNAPSHOT.</summary>
    public string? Snapshot { get; init; }
    /// <summary>FUSE worker threads serving the loop device's requests.</summary>
    public int FuseThreads { get; init; } = 8;
    /// <summary>Serve FUSE over io_uring (falling back to /dev/fuse with a notice where the kernel cannot).</summary>
    public bool IoUring { get; init; }
    /// <summary>With <see cref="IoUring"/>: fail rather than fall back.</summary>
    public bool RequireIoUring { get; init; }
    public EngineSettings Engine { get; init; } = new();
    /// <summary>Also serve the device over NBD: on this TCP address (loopback only), or on the Unix socket NAME.sock when <see cref="NbdUnix"/>.</summary>
    public System.Net.IPEndPoint? NbdTcp { get; init; }
    public bool NbdUnix { get; init; }

    /// <summary>Where --overlay puts the new image: beside the base, named after it and the attachment.</summary>
    public static string OverlayPathFor(string image, string name)
    {
        string full = Path.GetFullPath(image);
        string folder = Path.GetDirectoryName(full) ?? ".";
        return Path.Combine(folder, $"{Path.GetFileNameWithoutExtension(full)}.{name}.overlay{Path.GetExtension(full)}");
    }
}
