using CowDisk.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Storage;

/// <summary>
/// A raw block device holding an image's extents (--data-device). A writer opens it O_EXCL, so no mount and
/// no other exclusive opener shares it; its size bounds allocation; punching a hole is BLKDISCARD; Flush is
/// fdatasync, which flushes the device's volatile cache.
/// </summary>
internal sealed class DeviceStorageFile : IStorageFile
{
    private readonly SafeFileHandle _handle;

    public string Path { get; }
    public bool ReadOnly { get; }
    public long Length { get; }

    private DeviceStorageFile(string path, SafeFileHandle handle, bool readOnly, long size)
    {
        Path = path; _handle = handle; ReadOnly = readOnly; Length = size;
    }

    public static DeviceStorageFile Open(string path, bool readOnly)
    {
        if (!HostFile.IsBlockDevice(path))
            throw new StorageException($"{path} is not a block device", Errno.ENOTBLK);
        int fd = PosixFile.TryOpen(path, readOnly ? PosixFile.O_RDONLY : PosixFile.O_RDWR | PosixFile.O_EXCL);
        if (fd < 0)
            throw new StorageException(-fd == Errno.EBUSY
                ? $"data device {path} is in use (mounted, or opened exclusively by another process)"
                : $"cannot open data device {path}: {Errno.Describe(-fd)}", -fd);
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try { return new DeviceStorageFile(path, handle, readOnly, BlockDeviceIoctl.Size(handle)); }
        catch (IOException e) { handle.Dispose(); throw StorageException.From($"cannot size data device {path}", e); }
    }


    public int Read(long offset, Span<byte> buffer)
    {
        int n = (int)Math.Clamp(Length - offset, 0, buffer.Length);
        int total = 0;
        try
        {
            while (total < n)
            {
                int got = RandomAccess.Read(_handle, buffer[total..n], offset + total);
                if (got == 0) break;
                total += got;
            }
        }
        catch (IOException e) { throw StorageException.From($"read of {Path} failed", e); }
        return total;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (ReadOnly) throw new StorageException($"{Path} is open read-only", Errno.EROFS);
        if (offset + data.Length > Length) throw new StorageException($"write past the end of data device {Path}", Errno.ENOSPC);
        try { RandomAccess.Write(_handle, data, offset); }
        catch (IOException e) { throw StorageException.From($"write to {Path} failed", e); }
    }

    public void Flush()
    {
        if (ReadOnly) return;
        try { Libc.FDataSync(_handle); }
        catch (IOException e) { throw StorageException.From($"fdatasync of {Path} failed", e); }
    }

    /// <summary>A device does not grow or shrink: asking for more than it has is ENOSPC, less changes nothing.</summary>
    public void SetLength(long length)
    {
        if (length > Length) throw new StorageException($"data device {Path} has {Length} bytes, not {length}", Errno.ENOSPC);
    }

    public bool PunchHole(long offset, long length) => !ReadOnly && BlockDeviceIoctl.Discard(_handle, offset, length);

    public bool Reserve(long length) => length <= Length;   // a device has all its space

    public bool TryLock(bool exclusive) => FileLock.TryLock(_handle, exclusive, patient: true);

    public void Dispose() => _handle.Dispose();
}
