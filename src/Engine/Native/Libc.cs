using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>The few libc calls .NET does not expose.</summary>
internal static partial class Libc
{
    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pread(SafeFileHandle fd, byte* buffer, nint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pwrite(SafeFileHandle fd, byte* buffer, nint count, long offset);

    /// <summary>
    /// pread(2) until the buffer is full or the file ends; bytes read, or -errno. The I/O hot path: about a tenth of
    /// a page-cached 4 KiB read less than RandomAccess.Read (which validates the handle and maps errors per call).
    /// The handle is referenced for the call, so a concurrent close cannot hand its descriptor number to another file.
    /// </summary>
    public static unsafe long PReadFull(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer) return Transfer(handle, p, buffer.Length, offset, write: false);
    }

    /// <summary>pwrite(2) until every byte is written; 0, or -errno.</summary>
    public static unsafe int PWriteFull(SafeFileHandle handle, ReadOnlySpan<byte> data, long offset)
    {
        fixed (byte* p = data) return (int)Math.Min(0, Transfer(handle, p, data.Length, offset, write: true));
    }

    // Loops over short transfers and EINTR. A read that returns 0 has met the end of the file; a write that
    // returns 0 made no progress on a regular file, which is not expected and not looped on (EIO).
    internal static unsafe long Transfer(SafeFileHandle handle, byte* p, long length, long offset, bool write)
    {
        long done = 0;
        while (done < length)
        {
            nint n = write ? pwrite(handle, p + done, (nint)(length - done), offset + done)
                           : pread(handle, p + done, (nint)(length - done), offset + done);
            if (n > 0) done += n;
            else if (n == 0) return write ? -Errno.EIO : done;
            else if (Marshal.GetLastPInvokeError() is var errno && errno != Errno.EINTR) return -errno;
        }
        return done;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long len);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    private const int SEEK_DATA = 3, SEEK_HOLE = 4;

    [LibraryImport("libc", EntryPoint = "umask")]
    private static partial uint umask_(uint mask);

    /// <summary>Sets the process's file-creation mask; returns the old one.</summary>
    public static uint umask(uint mask) => umask_(mask);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int statx(int dirfd, string path, int flags, uint mask, byte* buffer);

    private const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE = 1;
    private const int StatxSize = 256, StatxModeOffset = 28;   // struct statx is the same on every architecture

    private const uint STATX_DIOALIGN = 0x2000;
    private const int StatxDioMemAlignOffset = 0x98, StatxDioOffsetAlignOffset = 0x9C;

    /// <summary>
    /// What O_DIRECT on path needs: the alignment of buffer addresses and of file offsets and lengths (statx
    /// STATX_DIOALIGN); (0, 0) when the file system does not support direct I/O on it.
    /// </summary>
    public static unsafe (int Memory, int Offset) DirectIoAlignment(string path)
    {
        byte* buffer = stackalloc byte[StatxSize];
        if (statx(AT_FDCWD, path, 0, STATX_DIOALIGN, buffer) != 0) return (0, 0);
        if ((*(uint*)buffer & STATX_DIOALIGN) == 0) return (0, 0);
        return ((int)*(uint*)(buffer + StatxDioMemAlignOffset), (int)*(uint*)(buffer + StatxDioOffsetAlignOffset));
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fcntl(int fd, int cmd, int arg);

    private const int F_GETFL = 3, F_SETFL = 4;

    private const int O_NONBLOCK = 0x800;

    /// <summary>Sets or clears O_NONBLOCK on a descriptor's open file; 0 or -errno.</summary>
    public static int SetNonBlocking(int fd, bool on)
    {
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0) return -Marshal.GetLastPInvokeError();
        int wanted = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (wanted != flags && fcntl(fd, F_SETFL, wanted) < 0) return -Marshal.GetLastPInvokeError();
        return 0;
    }

    /// <summary>Turns O_DIRECT on for an open file (Linux allows it through F_SETFL).</summary>
    public static void SetDirect(SafeFileHandle handle)
    {
        int fd = (int)handle.DangerousGetHandle();
        int flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | PosixFile.O_DIRECT) < 0)
            throw new IOException($"cannot turn on O_DIRECT: {Errno.Describe(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>Whether path is a socket (not following a final symlink).</summary>
    public static bool IsSocket(string path) => FileType(path) == 0xC000;

    /// <summary>The S_IFMT bits of path's mode (not following a final symlink); 0 if it cannot be read.</summary>
    public static unsafe int FileType(string path)
    {
        byte* buffer = stackalloc byte[StatxSize];
        if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE, buffer) != 0) return 0;
        return *(ushort*)(buffer + StatxModeOffset) & 0xF000;
    }

    /// <summary>The file's allocated byte ranges (SEEK_DATA / SEEK_HOLE); the whole file where the file system cannot tell.</summary>
    public static List<(long Offset, long Length)> DataRanges(SafeFileHandle handle, long length)
    {
        var ranges = new List<(long, long)>();
        for (long pos = 0; NextDataRange(handle, pos, length) is { } range; pos = range.Offset + range.Length) ranges.Add(range);
        return ranges;
    }

    /// <summary>
    /// The first allocated range at or past <paramref name="at"/> (SEEK_DATA, then SEEK_HOLE), clipped to
    /// <paramref name="length"/>; null when there is none. Where the file system cannot tell, the rest is data.
    /// One at a time, for a walk that may stop early over a file with millions of them.
    /// </summary>
    public static (long Offset, long Length)? NextDataRange(SafeFileHandle handle, long at, long length)
    {
        if (at >= length) return null;
        int fd = (int)handle.DangerousGetHandle();
        long data = lseek(fd, at, SEEK_DATA);
        if (data < 0) return Marshal.GetLastPInvokeError() == 6 ? null : (at, length - at);   // ENXIO: no data past at
        if (data >= length) return null;
        long hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || hole > length) hole = length;
        return (data, hole - data);
    }

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    private const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sync_file_range(int fd, long offset, long nbytes, uint flags);

    private const uint SYNC_FILE_RANGE_WRITE = 2;

    /// <summary>
    /// Starts writeback of a range without waiting for it (sync_file_range WRITE): a big copy streams to the disk
    /// while it runs instead of leaving it all to the final fdatasync. A hint only, never a barrier: durability
    /// still comes from fdatasync. Errors are ignored (fdatasync reports any that matter).
    /// </summary>
    public static void StartWriteback(SafeFileHandle handle, long offset, long length) =>
        sync_file_range((int)handle.DangerousGetHandle(), offset, length, SYNC_FILE_RANGE_WRITE);

    [LibraryImport("libc")]
    private static partial int posix_fadvise(int fd, long offset, long len, int advice);

    private const int POSIX_FADV_RANDOM = 1, POSIX_FADV_WILLNEED = 3;

    /// <summary>Queues reads of the range into the page cache and returns (posix_fadvise WILLNEED); nothing is copied. A hint.</summary>
    public static void AdviseWillNeed(SafeFileHandle handle, long offset, long length) =>
        posix_fadvise((int)handle.DangerousGetHandle(), offset, length, POSIX_FADV_WILLNEED);

    /// <summary>
    /// No readahead on this descriptor (posix_fadvise RANDOM): each read fetches what it asks for and no more. For a
    /// reader that knows where the data is and reads it in large pieces itself; readahead would also read (and zero
    /// fill) the holes between them. A hint: ignored where unsupported.
    /// </summary>
    public static void AdviseNoReadahead(SafeFileHandle handle) =>
        posix_fadvise((int)handle.DangerousGetHandle(), 0, 0, POSIX_FADV_RANDOM);

    public static void FDataSync(SafeFileHandle handle)
    {
        if (fdatasync((int)handle.DangerousGetHandle()) != 0)
            { int e = Marshal.GetLastPInvokeError(); throw new IOException($"fdatasync failed: errno {e}", e); }
    }

    public static void FSync(SafeFileHandle handle)
    {
        if (fsync((int)handle.DangerousGetHandle()) != 0)
            { int e = Marshal.GetLastPInvokeError(); throw new IOException($"fsync failed: errno {e}", e); }
    }

    /// <summary>fsync of a folder, so that files created or renamed in it survive power loss.</summary>
    public static void FSyncDirectory(string path)
    {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) { int e = Marshal.GetLastPInvokeError(); throw new IOException($"open {path} failed: errno {e}", e); }
        try
        {
            if (fsync(fd) != 0) { int e = Marshal.GetLastPInvokeError(); throw new IOException($"fsync {path} failed: errno {e}", e); }
        }
        finally { close(fd); }
    }

    /// <summary>
    /// Allocates [0, length) without changing the size (FALLOC_FL_KEEP_SIZE): false only for ENOSPC; a file
    /// system that cannot preallocate is taken as a yes (nothing reserved, nothing to refuse).
    /// </summary>
    public static bool Reserve(SafeFileHandle handle, long length) =>
        fallocate((int)handle.DangerousGetHandle(), FALLOC_FL_KEEP_SIZE, 0, length) == 0 || Marshal.GetLastPInvokeError() != 28;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int fstatfs(int fd, byte* buf);

    /// <summary>Bytes an unprivileged writer can still allocate on the file's file system (statfs f_bavail × f_bsize); -1 if unknown.</summary>
    public static unsafe long FreeBytes(SafeFileHandle handle)
    {
        // struct statfs on 64-bit Linux: f_type, f_bsize, f_blocks, f_bfree, f_bavail, ... (8 bytes each; 120 in all).
        byte* buf = stackalloc byte[128];
        if (fstatfs((int)handle.DangerousGetHandle(), buf) != 0) return -1;
        long blockSize = *(long*)(buf + 8), available = *(long*)(buf + 32);
        return blockSize > 0 && available >= 0 ? available * blockSize : -1;
    }

    /// <summary>Allocates a byte range, growing the file if it passes the end (fallocate mode 0); false on any failure.</summary>
    public static bool Preallocate(SafeFileHandle handle, long offset, long length) =>
        fallocate((int)handle.DangerousGetHandle(), 0, offset, length) == 0;

    /// <summary>Returns host space for a byte range; false where the file system cannot punch holes.</summary>
    public static bool PunchHole(SafeFileHandle handle, long offset, long length) =>
        fallocate((int)handle.DangerousGetHandle(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0;
}
