using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>flock(2) on an open file: shared for readers, exclusive for the one writer.</summary>
internal static partial class FileLock
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;

    /// <summary>struct flock, for fcntl byte-range locks (also qemu's, <see cref="QemuImageLock"/>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Flock
    {
        public short Type, Whence;
        public long Start, Length;
        public int Pid;
        private int _pad;
    }

    [LibraryImport("libc", SetLastError = true)]
    internal static partial int fcntl(int fd, int cmd, ref Flock lk);

    internal const int F_OFD_GETLK = 36, F_OFD_SETLK = 37;
    internal const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;

    /// <summary>
    /// An open-file-description byte-range lock on one byte (independent of flock on Linux): readers of snapshot
    /// views hold it shared for as long as they read; deleting a snapshot needs it exclusively, for a moment.
    /// </summary>
    public static bool TryLockByte(SafeFileHandle handle, long offset, bool exclusive)
    {
        var lk = new Flock { Type = exclusive ? F_WRLCK : F_RDLCK, Whence = 0, Start = offset, Length = 1 };
        if (fcntl((int)handle.DangerousGetHandle(), F_OFD_SETLK, ref lk) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno is EWOULDBLOCK or 13) return false;   // EAGAIN / EACCES: held by another
        throw new IOException($"fcntl(F_OFD_SETLK) failed: errno {errno}");
    }

    public static void UnlockByte(SafeFileHandle handle, long offset)
    {
        var lk = new Flock { Type = F_UNLCK, Whence = 0, Start = offset, Length = 1 };
        fcntl((int)handle.DangerousGetHandle(), F_OFD_SETLK, ref lk);
    }
    private const int EWOULDBLOCK = 11;

    // A lock can outlive its holder's close for a moment: a child forked by the holder (Process.Start) shares
    // the open file until its exec closes it. So a conflict is retried briefly before it is reported.
    private const int Attempts = 25, RetryMs = 10;

    /// <summary>
    /// Takes the lock without blocking; false if another open file holds a conflicting one. Patient: retry a
    /// conflict for up to ~250 ms first (for image opens; liveness probes want the answer at once).
    /// </summary>
    public static bool TryLock(SafeFileHandle handle, bool exclusive, bool patient = false)
    {
        for (int attempt = 1; ; attempt++)
        {
            if (flock((int)handle.DangerousGetHandle(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return true;
            int errno = Marshal.GetLastPInvokeError();
            if (errno != EWOULDBLOCK) throw new IOException($"flock failed: errno {errno}");
            if (!patient || attempt == Attempts) return false;
            Thread.Sleep(RetryMs);
        }
    }
}
