namespace CowDisk.Format.IoUring;

/// <summary>Where io_uring's three regions are mapped from the ring's descriptor (mmap offsets).</summary>
public static class IoUringLayout
{
    public const long SqRingOffset = 0;
    public const long CqRingOffset = 0x8000000;
    public const long SqesOffset = 0x10000000;
    /// <summary>io_uring_enter: wait for completions (and, with DeferTaskRun, run the task work that makes them).</summary>
    public const uint EnterGetEvents = 1;
}
