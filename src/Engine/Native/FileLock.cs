using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>flock(2) on an open file: shared for readers, exclusive for the one writer.</summary>
internal static partial class FileLock
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(int fd, int operation);

    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
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
