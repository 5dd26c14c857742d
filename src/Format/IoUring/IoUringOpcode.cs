namespace CowDisk.Format.IoUring;

/// <summary>IORING_OP_* (the ones CowDisk submits).</summary>
public enum IoUringOpcode : byte
{
    Nop = 0,
    Read = 22,
    Write = 23,
    /// <summary>A command for the file's own driver (here: FUSE_IO_URING_CMD_* on /dev/fuse).</summary>
    UringCmd = 46,
}
