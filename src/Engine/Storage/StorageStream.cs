namespace CowDisk.Engine.Storage;

/// <summary>
/// A seekable <see cref="Stream"/> over a storage file, for LiteDB's data file. Flush is the file's
/// durability barrier (LiteDB flushes after a checkpoint has written its pages, before it empties the log).
/// Does not own the file. LiteDB serialises access through its own ConcurrentStream wrappers.
/// </summary>
/// <param name="pageSize">Length is rounded down to whole pages: a page torn by a crash inside a checkpoint is
/// still in the log and is rewritten by the replay, so it is out of sight, not cropped by a write at open.</param>
internal sealed class StorageStream(IStorageFile file, int pageSize = 1) : Stream
{
    private long _position;

    /// <summary>Off: writes are refused (an IOException LiteDB swallows where it only marks the file invalid).</summary>
    public volatile bool WritesAllowed = true;

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => !file.ReadOnly;
    public override long Length => file.Length / pageSize * pageSize;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        int n = file.Read(_position, buffer);
        _position += n;
        return n;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (!WritesAllowed) throw new StorageException($"{file.Path}: write refused outside a checkpoint", Native.Errno.EROFS);
        file.Write(_position, buffer);
        _position += buffer.Length;
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        _ => file.Length + offset,
    };

    public override void SetLength(long value)
    {
        if (!WritesAllowed) throw new StorageException($"{file.Path}: resize refused outside a checkpoint", Native.Errno.EROFS);
        file.SetLength(value);
    }

    public override void Flush() => file.Flush();
}
