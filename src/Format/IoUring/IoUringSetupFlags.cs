namespace CowDisk.Format.IoUring;

/// <summary>IORING_SETUP_* flags of io_uring_setup (the ones CowDisk uses).</summary>
[Flags]
public enum IoUringSetupFlags : uint
{
    None = 0,
    /// <summary>The completion ring's size is given (CqEntries), not twice the submission ring's.</summary>
    CqSize = 1u << 3,
    /// <summary>Task work (such as a FUSE request copied into our buffers) waits for our next enter instead of interrupting us.</summary>
    CoopTaskRun = 1u << 8,
    /// <summary>128-byte submission entries: URING_CMD carries 80 bytes of command (FUSE needs them).</summary>
    Sqe128 = 1u << 10,
    /// <summary>Only one thread ever submits (lets the kernel skip locking; needed by DeferTaskRun).</summary>
    SingleIssuer = 1u << 12,
    /// <summary>Task work runs only when the submitting thread waits for completions (io_uring_enter with GETEVENTS).</summary>
    DeferTaskRun = 1u << 13,
}

/// <summary>IORING_FEAT_* bits the kernel reports after io_uring_setup.</summary>
[Flags]
public enum IoUringFeatures : uint
{
    None = 0,
    /// <summary>The submission and completion rings share one mapping.</summary>
    SingleMmap = 1u << 0,
    /// <summary>IORING_FEAT_RW_CUR_POS (5.6, with IORING_OP_READ and IORING_OP_WRITE).</summary>
    RwCurPos = 1u << 3,
}
