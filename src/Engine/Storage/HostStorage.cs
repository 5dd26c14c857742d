using CowDisk.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Storage;

/// <summary>The host's file system: files opened with .NET handles, barriers as fdatasync and folder fsync.</summary>
public sealed class HostStorage : IStorage
{
    public static readonly HostStorage Instance = new();

    public bool Exists(string path) => File.Exists(path);

    public IStorageFile Open(string path, StorageAccess access)
    {
        try
        {
            var handle = File.OpenHandle(path, FileMode.Open,
                access == StorageAccess.Read ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            return new HostStorageFile(path, handle, access == StorageAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StorageException.From($"cannot open {path}{(access == StorageAccess.ReadWrite ? " for writing" : "")}", e);
        }
    }

    public IStorageFile OpenDevice(string path, StorageAccess access) =>
        DeviceStorageFile.Open(path, access == StorageAccess.Read);

    public IStorageFile Create(string path)
    {
        try
        {
            var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
            return new HostStorageFile(path, handle, readOnly: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StorageException.From($"cannot create {path}", e);
        }
    }

    public void Delete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StorageException.From($"cannot delete {path}", e);
        }
    }

    public void Rename(string from, string to)
    {
        try { File.Move(from, to, overwrite: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw StorageException.From($"cannot rename {from} to {to}", e);
        }
    }

    public void SyncFolder(string folder)
    {
        try { Libc.FSyncDirectory(folder); }
        catch (IOException e) { throw StorageException.From($"cannot sync folder {folder}", e); }
    }
}

/// <summary>A host file behind the seam. Flush is fdatasync: data and the size needed to read it back.</summary>
internal sealed class HostStorageFile(string path, SafeFileHandle handle, bool readOnly) : IStorageFile
{
    public string Path { get; } = path;
    public bool ReadOnly { get; } = readOnly;
    internal SafeFileHandle Handle { get; } = handle;

    public long Length => RandomAccess.GetLength(Handle);

    public int Read(long offset, Span<byte> buffer)
    {
        int total = 0;
        try
        {
            while (!buffer.IsEmpty)
            {
                int n = RandomAccess.Read(Handle, buffer, offset);
                if (n == 0) break;
                total += n; offset += n;
                buffer = buffer[n..];
            }
        }
        catch (IOException e) { throw StorageException.From($"read of {Path} failed", e); }
        return total;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (ReadOnly) throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
        try { RandomAccess.Write(Handle, data, offset); }
        catch (IOException e) { throw StorageException.From($"write to {Path} failed", e); }
    }

    public void Flush()
    {
        if (ReadOnly) return;
        try { Libc.FDataSync(Handle); }
        catch (IOException e) { throw StorageException.From($"fdatasync of {Path} failed", e); }
    }

    public void SetLength(long length)
    {
        if (ReadOnly) throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
        try { RandomAccess.SetLength(Handle, length); }
        catch (IOException e) { throw StorageException.From($"resize of {Path} failed", e); }
    }

    public bool PunchHole(long offset, long length) => !ReadOnly && Libc.PunchHole(Handle, offset, length);

    /// <summary>Byte ranges that occupy host space (holes left out).</summary>
    public List<(long Offset, long Length)> DataRanges() => Libc.DataRanges(Handle, Length);

    public bool Reserve(long length) => ReadOnly || Libc.Reserve(Handle, length);

    public bool TryLock(bool exclusive) => FileLock.TryLock(Handle, exclusive, patient: true);

    public void Dispose() => Handle.Dispose();
}
