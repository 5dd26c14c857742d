namespace CowDisk.Engine.Storage;

/// <summary>A missing file seen read-only: zero bytes, nothing to write. Lets a read-only open skip creating it.</summary>
internal sealed class EmptyStorageFile(string path) : IStorageFile
{
    public string Path { get; } = path;
    public bool ReadOnly => true;
    public long Length => 0;
    public int Read(long offset, Span<byte> buffer) => 0;
    public void Write(long offset, ReadOnlySpan<byte> data) => throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
    public void Flush() { }
    public void SetLength(long length) => throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
    public bool PunchHole(long offset, long length) => false;
    public bool Reserve(long length) => true;

    public bool TryLock(bool exclusive) => true;
    public void Dispose() { }
}
