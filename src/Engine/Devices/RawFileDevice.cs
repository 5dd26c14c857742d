using CowDisk.Engine.Native;
using CowDisk.Engine.Storage;

namespace CowDisk.Engine.Devices;

/// <summary>
/// A plain file (or raw image) as a block device: a read-only base, or what `attach --read-only` serves for a
/// raw file. Its bytes go through the storage seam like every other file the engine touches.
/// </summary>
public sealed class RawFileDevice : IBlockDevice
{
    private readonly IStorageFile _file;
    private readonly bool _readOnly;

    public string Path { get; }
    public long Size { get; }

    public RawFileDevice(string path, bool readOnly)
    {
        Path = System.IO.Path.GetFullPath(path);
        _readOnly = readOnly;
        _file = HostStorage.Instance.Open(Path, readOnly ? StorageAccess.Read : StorageAccess.ReadWrite);
        if (!_file.TryLock(exclusive: !readOnly))
        {
            _file.Dispose();
            throw new Images.ImageLockedException(readOnly
                ? $"{Path} is open for writing by another process{LockHolder.Describe(Path)}"
                : $"{Path} cannot be opened for writing: it is in use{LockHolder.Describe(Path)}");
        }
        Size = _file.Length;
    }

    public BlockDeviceCapabilities Capabilities => _readOnly
        ? BlockDeviceCapabilities.ReadOnly
        : BlockDeviceCapabilities.Flush | BlockDeviceCapabilities.Fua | BlockDeviceCapabilities.Discard | BlockDeviceCapabilities.WriteZeroes;

    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        int n = _file.Read(offset, buffer);
        buffer[n..].Clear();   // the file shrank under us: past its end reads zeros
    }

    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None)
    {
        CheckWritable();
        CheckRange(offset, buffer.Length);
        _file.Write(offset, buffer);
        if ((flags & WriteFlags.Fua) != 0) _file.Flush();   // FUA: this write durable before the call returns
    }

    public void Flush() => _file.Flush();

    /// <summary>The file's allocated byte ranges (SEEK_DATA); everything where the storage cannot tell.</summary>
    public List<(long Offset, long Length)> DataRanges() =>
        _file is Storage.HostStorageFile host ? host.DataRanges() : [(0, Size)];

    /// <summary>For a reader that reads the data ranges itself in large pieces: no readahead into the holes between.</summary>
    public void AdviseNoReadahead()
    {
        if (_file is Storage.HostStorageFile host) host.AdviseNoReadahead();
    }

    public void Discard(long offset, long length) => WriteZeroes(offset, length);

    public void WriteZeroes(long offset, long length)
    {
        CheckWritable();
        CheckRange(offset, length);
        if (length == 0 || _file.PunchHole(offset, length)) return;
        Span<byte> zeros = stackalloc byte[4096];
        zeros.Clear();
        for (long done = 0; done < length; done += zeros.Length)
            _file.Write(offset + done, zeros[..(int)Math.Min(zeros.Length, length - done)]);
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

    public void Dispose() => _file.Dispose();
}
