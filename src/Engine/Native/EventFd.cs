using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>
/// An eventfd: a counter the kernel can wait on. An io_uring thread keeps a read of it in its ring, so another
/// thread can wake it out of io_uring_enter with one write.
/// </summary>
internal sealed unsafe partial class EventFd : IDisposable
{
    private const int EFD_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int eventfd(uint initial, int flags);

    public int Fd { get; }

    public EventFd()
    {
        Fd = eventfd(0, EFD_CLOEXEC);
        if (Fd < 0) throw new IOException($"eventfd failed: {Errno.Describe(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>Adds one: a pending read of it completes.</summary>
    public void Signal()
    {
        ulong one = 1;
        PosixFile.Write(Fd, (byte*)&one, sizeof(ulong));
    }

    public void Dispose() => PosixFile.Close(Fd);
}
