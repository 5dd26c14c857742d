using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>Host-side facts about a file.</summary>
public static partial class HostFile
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Stat
    {
        public ulong st_dev, st_ino, st_nlink;
        public uint st_mode, st_uid, st_gid, pad0;
        public ulong st_rdev;
        public long st_size, st_blksize, st_blocks;
        public long st_atime, st_atime_nsec, st_mtime, st_mtime_nsec, st_ctime, st_ctime_nsec;
        public long r0, r1, r2;
    }

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int stat(string path, out Stat buf);

    public static ulong? Inode(string path) => stat(path, out var s) == 0 ? s.st_ino : null;

    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFBLK = 0x6000;

    /// <summary>True if the path (after symlinks) is a block device.</summary>
    public static bool IsBlockDevice(string path) => stat(path, out var s) == 0 && (s.st_mode & S_IFMT) == S_IFBLK;

    /// <summary>
    /// The path exists (after symlinks) and is neither a regular file nor a block device: a FIFO (whose open waits
    /// for a writer), a socket, a character device such as /dev/zero, or a folder.
    /// </summary>
    public static bool IsSpecialFile(string path) =>
        stat(path, out var s) == 0 && (s.st_mode & S_IFMT) is not (S_IFREG or S_IFBLK);

    /// <summary>A regular file (following symlinks): its length is its content, unlike a pipe's or a device's.</summary>
    public static bool IsRegularFile(string path) => stat(path, out var s) == 0 && (s.st_mode & S_IFMT) == S_IFREG;

    [LibraryImport("libc", EntryPoint = "realpath", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void free(nint pointer);

    /// <summary>The canonical absolute path (every symlink and '..' resolved, in folders too), or null if it does not exist.</summary>
    public static string? RealPath(string path)
    {
        nint resolved = realpath(path, 0);
        if (resolved == 0) return null;
        try { return Marshal.PtrToStringUTF8(resolved); }
        finally { free(resolved); }
    }

    /// <summary>Bytes the file occupies on disk (st_blocks × 512; x86-64 stat layout), holes excluded.</summary>
    public static long AllocatedBytes(string path) =>
        stat(path, out var s) == 0 ? s.st_blocks * 512 : new FileInfo(path).Length;
}
