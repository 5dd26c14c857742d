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

    /// <summary>
    /// Over /dev/fuse: the first worker spins up to this long (an adaptive window) for its next request and for
    /// its direct-I/O disk transfers before it sleeps; 0 = every worker sleeps at once. See <c>PollWindow</c>.
    /// </summary>
    public int PollMicroseconds { get; init; }

    /// <summary>
    /// How requests reach the server: /dev/fuse (read and write per request), or FUSE over io_uring (per-CPU
    /// queues of registered buffers; falls back to /dev/fuse with a logged notice where the kernel cannot).
    /// </summary>
    public FuseTransport Transport { get; init; } = FuseTransport.DevFuse;

    /// <summary>With <see cref="FuseTransport.IoUring"/>: refuse to start rather than fall back to /dev/fuse.</summary>
    public bool RequireIoUring { get; init; }

    /// <summary>
    /// With io_uring: READ and WRITE are served on the queue threads (best when the device's I/O goes through the
    /// page cache); off, they go to the worker pool (best when each waits on the disk, as with O_DIRECT).
    /// </summary>
    public bool IoUringServeDataInline { get; init; } = true;

    /// <summary>
    /// Tests only: the queue thread "Q.T" fails before registering, as one whose ring the kernel refused would
    /// (COWDISK_FUSE_URING_FAIL_THREAD), to check what a partial registration does; "probe": the check made before
    /// mounting fails, as where io_uring is disabled (kernel.io_uring_disabled, seccomp).
    /// </summary>
    public string? IoUringFailThread { get; init; } = Environment.GetEnvironmentVariable("COWDISK_FUSE_URING_FAIL_THREAD");

    /// <summary>
    /// Called as soon as this server has turned the kernel's io_uring switch on, before it mounts: the attachment's
    /// record says so at once, so whoever cleans up after a daemon killed from here on turns the switch back off.
    /// </summary>
    public Action? IoUringSwitchTurnedOn { get; init; }

    /// <summary>
    /// Tests only: the server stops for good right after turning the io_uring switch on
    /// (COWDISK_FUSE_URING_HANG_AFTER_SWITCH=1), as one stuck there would, to check the cleanup after it is killed.
    /// </summary>
    public bool IoUringHangAfterSwitch { get; init; } = Environment.GetEnvironmentVariable("COWDISK_FUSE_URING_HANG_AFTER_SWITCH") == "1";

    /// <summary>
    /// With io_uring: threads with rings of their own for READs and WRITEs over 64 KiB (0: the pool serves them
    /// and the queue threads answer them; null: as many as <see cref="WorkerThreads"/>). Only with
    /// <see cref="IoUringServeDataInline"/> (the page cache on). See <see cref="FuseUringBulk"/>.
    /// </summary>
    public int? IoUringBulkWorkers { get; init; }

    /// <summary>io_uring entries per queue (one queue per possible CPU): requests a queue holds at once.</summary>
    public int IoUringEntries { get; init; } = 32;

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

/// <summary>How FUSE requests reach the server.</summary>
public enum FuseTransport
{
    /// <summary>read(2) a request from /dev/fuse, write(2) its reply.</summary>
    DevFuse,
    /// <summary>FUSE over io_uring: one COMMIT_AND_FETCH submission answers a request and takes the next.</summary>
    IoUring,
}
