using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>How a <see cref="FuseServer"/> mounts and serves its one file.</summary>
public sealed record FuseServerOptions
{
    /// <summary>An empty folder the server mounts on; created if missing.</summary>
    public required string MountPoint { get; init; }

    /// <summary>Name of the single regular file in the mount's root folder.</summary>
    public string FileName { get; init; } = "disk";

    /// <summary>Shown as the mount's source in /proc/mounts.</summary>
    public string SourceName { get; init; } = "cowdisk";

    /// <summary>Threads reading requests from /dev/fuse; each serves one request at a time, synchronously.</summary>
    public int WorkerThreads { get; init; } = 8;

    /// <summary>Largest READ/WRITE payload offered at INIT (the kernel caps it at fs.fuse.max_pages_limit pages).</summary>
    public int MaxWrite { get; init; } = 1 << 20;

    /// <summary>Asynchronous (background) requests the kernel may queue at once; bounds the queue depth of direct I/O.</summary>
    public ushort MaxBackground { get; init; } = 128;

    /// <summary>
    /// FOPEN_* flags of every OPEN reply. DirectIo keeps the page cache out of the FUSE file (the loop device
    /// above has its own); ParallelDirectWrites stops the kernel from serialising writes on the inode lock.
    /// </summary>
    public FuseOpenReplyFlags OpenFlags { get; init; } = FuseOpenReplyFlags.DirectIo | FuseOpenReplyFlags.ParallelDirectWrites;

    /// <summary>Where the server reports I/O errors and protocol events; never called per request on success.</summary>
    public Action<string> Log { get; init; } = _ => { };
}
