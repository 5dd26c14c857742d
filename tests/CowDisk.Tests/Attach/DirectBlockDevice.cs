using System.Runtime.InteropServices;

namespace CowDisk.Tests.Attach;

/// <summary>
/// A block device opened O_RDWR | O_DIRECT by the test process itself: pread/pwrite from 4 KiB-aligned buffers,
/// fdatasync, BLKDISCARD and fallocate(PUNCH_HOLE or ZERO_RANGE, with KEEP_SIZE). Calls return 0 or a byte count on success and a
/// negated errno on failure, so a caller can tell "failed" from "hung" without exceptions on other threads.
/// </summary>
public sealed unsafe partial class DirectBlockDevice : IDisposable
{
    public const int Alignment = 4096;
    private const int O_RDWR = 2, O_DIRECT = 0x4000, O_CLOEXEC = 0x80000;
    private const ulong BLKDISCARD = 0x1277, BLKGETSIZE64 = 0x80081272;
    private const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2, FALLOC_FL_ZERO_RANGE = 0x10;

    private int _fd;

    public string Path { get; }
    public long Size { get; }

    public DirectBlockDevice(string path)
    {
        Path = path;
        _fd = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
        if (_fd < 0) throw new IOException($"cannot open {path}: errno {Marshal.GetLastPInvokeError()}");
        ulong size;
        if (ioctl(_fd, BLKGETSIZE64, &size) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            close(_fd);
            throw new IOException($"BLKGETSIZE64 on {path}: errno {errno}");
        }
        Size = (long)size;
    }

    /// <summary>pwrite of the whole buffer; returns 0, or a negated errno (a short write counts as EIO).</summary>
    public int Write(long offset, AlignedBuffer buffer, int length)
    {
        nint n = pwrite(_fd, buffer.Pointer, (nuint)length, offset);
        if (n < 0) return -Marshal.GetLastPInvokeError();
        return n == length ? 0 : -5;
    }

    public int Read(long offset, AlignedBuffer buffer, int length)
    {
        nint n = pread(_fd, buffer.Pointer, (nuint)length, offset);
        if (n < 0) return -Marshal.GetLastPInvokeError();
        return n == length ? 0 : -5;
    }

    /// <summary>fdatasync: on a block device, writes back its page cache and sends a FLUSH down the stack.</summary>
    public int DataSync() => fdatasync(_fd) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    public int Discard(long offset, long length)
    {
        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)offset;
        range[1] = (ulong)length;
        return ioctl(_fd, BLKDISCARD, range) == 0 ? 0 : -Marshal.GetLastPInvokeError();
    }

    /// <summary>fallocate(PUNCH_HOLE | KEEP_SIZE): the loop device passes it on as a punch (FUSE FALLOCATE → Discard).</summary>
    public int PunchHole(long offset, long length) =>
        fallocate(_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    /// <summary>fallocate(ZERO_RANGE | KEEP_SIZE): the loop device passes it on as a zero range (→ WriteZeroes).</summary>
    public int ZeroRange(long offset, long length) =>
        fallocate(_fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : -Marshal.GetLastPInvokeError();

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) close(fd);
    }

    public static string ErrnoName(int errno) => errno switch
    {
        5 => "EIO", 6 => "ENXIO", 19 => "ENODEV", 28 => "ENOSPC", 103 => "ECONNABORTED", 107 => "ENOTCONN",
        _ => $"errno {errno}",
    };

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pwrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint pread(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int ioctl(int fd, ulong request, void* argument);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fallocate(int fd, int mode, long offset, long length);
}

/// <summary>Native memory aligned for O_DIRECT.</summary>
public sealed unsafe class AlignedBuffer : IDisposable
{
    public AlignedBuffer(int length)
    {
        Length = length;
        Pointer = (byte*)NativeMemory.AlignedAlloc((nuint)length, DirectBlockDevice.Alignment);
    }

    public byte* Pointer { get; private set; }
    public int Length { get; }
    public Span<byte> Span => new(Pointer, Length);

    public void Dispose()
    {
        if (Pointer is null) return;
        NativeMemory.AlignedFree(Pointer);
        Pointer = null;
    }
}
