namespace CowDisk.Format.Fuse;

/// <summary>FOPEN_* bits of an OPEN reply: how the kernel treats the opened file.</summary>
[Flags]
public enum FuseOpenReplyFlags : uint
{
    None = 0,
    /// <summary>Bypass the page cache for every read and write of this open file.</summary>
    DirectIo = 1u << 0,
    KeepCache = 1u << 1,
    NonSeekable = 1u << 2,
    CacheDir = 1u << 3,
    Stream = 1u << 4,
    NoFlush = 1u << 5,
    /// <summary>Let the kernel send direct writes to one inode concurrently instead of under the inode lock.</summary>
    ParallelDirectWrites = 1u << 6,
}
