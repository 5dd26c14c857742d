using CowDisk.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Devices;

/// <summary>A plain file (or raw image) as a block device: the bottom layer, and a read-only base.</summary>
public sealed class RawFileDevice : IBlockDevice
{
    private readonly SafeFileHandle _handle;
    private readonly bool _readOnly;

    public string Path { get; }
    public long Size { get; }

    public RawFileDevice(string path, bool readOnly)
    {
        Path = System.IO.Path.GetFullPath(path);
        _readOnly = readOnly;
        _handle = File.OpenHandle(Path, FileMode.Open, readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite);
        if (!FileLock.TryLock(_handle, exclusive: !readOnly, patient: true))
        {
            _handle.Dispose();
            throw new Images.ImageLockedException(readOnly
                ? $"{Path} is open for writing by another process{LockHolder.Describe(Path)}"
                : $"{Path} cannot be opened for writing: it is in use{LockHolder.Describe(Path)}");
        }
        Size = RandomAccess.GetLength(_handle);
    }

    public BlockDeviceCapabilities Capabilities => _readOnly
        ? BlockDeviceCapabilities.ReadOnly
        : BlockDeviceCapabilities.Flush | BlockDeviceCapabilities.Fua | BlockDeviceCapabilities.Discard | BlockDeviceCapabilities.WriteZeroes;

    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(_handle, buffer, offset);
            if (n == 0) { buffer.Clear(); return; }
            buffer = buffer[n..];
            offset += n;
        }
    }

    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None)
    {
        CheckWritable();
        CheckRange(offset, buffer.Length);
        RandomAccess.Write(_handle, buffer, offset);
        if ((flags & WriteFlags.Fua) != 0) Libc.FDataSync(_handle);
    }

    public void Flush()
    {
        if (!_readOnly) Libc.FDataSync(_handle);
    }

    public void Discard(long offset, long length) => WriteZeroes(offset, length);

    public void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (length == 0 || Libc.PunchHole(_handle, offset, length)) return;
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        for (long done = 0; done < length; done += zeros.Length)
            RandomAccess.Write(_handle, zeros[..(int)Math.Min(zeros.Length, length - done)], offset + done);
    }

    private void CheckWritable()
    {
        if (_readOnly) throw new BlockDeviceException($"{Path} is open read-only");
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > Size - length)
            throw new BlockDeviceException($"I/O at {offset}+{length} is outside the device ({Size} bytes)");
    }

    public void Dispose() => _handle.Dispose();
}
