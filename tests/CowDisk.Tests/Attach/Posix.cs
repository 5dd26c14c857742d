using System.Runtime.InteropServices;

namespace CowDisk.Tests.Attach;

/// <summary>The few syscalls the attach tests need that .NET does not expose.</summary>
public static partial class Posix
{
    private const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;
    public const int SIGKILL = 9;

    /// <summary>kill(pid, SIGKILL); throws if the signal could not be sent.</summary>
    public static void Kill9(int pid)
    {
        if (kill(pid, SIGKILL) != 0) throw new IOException($"kill -9 {pid}: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>
    /// fsync(2) of an open file; returns 0 or a negated errno. Not FileStream.Flush(true): .NET ignores EROFS from
    /// fsync, which ext4 returns once an I/O error has made it read-only, with the data never written.
    /// </summary>
    public static int Fsync(Microsoft.Win32.SafeHandles.SafeFileHandle file)
    {
        bool added = false;
        try
        {
            file.DangerousAddRef(ref added);
            return fsync((int)file.DangerousGetHandle()) == 0 ? 0 : -Marshal.GetLastPInvokeError();
        }
        finally { if (added) file.DangerousRelease(); }
    }

    /// <summary>fsync of a folder, so the names created in it are durable; returns 0 or a negated errno.</summary>
    public static int FsyncDirectory(string path)
    {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return -Marshal.GetLastPInvokeError();
        int result = fsync(fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();
        close(fd);
        return result;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int signal);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
