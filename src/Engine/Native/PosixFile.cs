using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>
/// open/read/write/close on raw descriptors, for the files .NET must not wrap: /dev/fuse (blocking reads from
/// several threads), block devices opened with O_EXCL, and lock files (.NET would add its own flock).
/// </summary>
internal static unsafe partial class PosixFile
{
    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
    public const int O_CREAT = 0x40, O_EXCL = 0x80, O_DSYNC = 0x1000, O_DIRECT = 0x4000, O_CLOEXEC = 0x80000;
    public const int O_SYNC = 0x101000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenNative(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint ReadNative(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint WriteNative(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    /// <summary>Opens a path; returns the descriptor or a negated errno.</summary>
    public static int TryOpen(string path, int flags, int mode = 0)
    {
        int fd = OpenNative(path, flags | O_CLOEXEC, mode);
        return fd >= 0 ? fd : -Marshal.GetLastPInvokeError();
    }

    public static SafeFileHandle Open(string path, int flags, int mode = 0)
    {
        int fd = TryOpen(path, flags, mode);
        if (fd < 0) throw new IOException($"cannot open {path}: {Errno.Describe(-fd)}");
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>read(2): bytes read, or a negated errno.</summary>
    public static nint Read(int fd, byte* buffer, int count)
    {
        nint n = ReadNative(fd, buffer, (nuint)count);
        return n >= 0 ? n : -Marshal.GetLastPInvokeError();
    }

    /// <summary>write(2): bytes written, or a negated errno.</summary>
    public static nint Write(int fd, byte* buffer, int count)
    {
        nint n = WriteNative(fd, buffer, (nuint)count);
        return n >= 0 ? n : -Marshal.GetLastPInvokeError();
    }

    public static void Close(int fd) => CloseNative(fd);
}
