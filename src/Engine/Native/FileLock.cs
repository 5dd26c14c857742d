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

    /// <summary>Takes the lock without waiting; false if another open file holds a conflicting one.</summary>
    public static bool TryLock(SafeFileHandle handle, bool exclusive)
    {
        if (flock((int)handle.DangerousGetHandle(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == EWOULDBLOCK) return false;
        throw new IOException($"flock failed: errno {errno}");
    }
}
