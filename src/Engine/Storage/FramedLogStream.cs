using CowDisk.Engine.Devices;
using CowDisk.Format.Metadata;

namespace CowDisk.Engine.Storage;

/// <summary>
/// LiteDB's write-ahead log as LiteDB sees it (whole 8 KiB pages, appended), stored as frames of page +
/// checksummed trailer (<see cref="LogFrameTrailer"/>). At open the log is trusted only up to the first frame
/// that does not check out: a commit torn by power loss (later pages durable, earlier ones not) ends the log
/// before its last, confirming page, so LiteDB never replays half a transaction. What lies past that point
/// was never acknowledged (every acknowledged commit was followed by <see cref="Flush"/>).
/// Thread-safe: every method holds the stream's monitor, the same one LiteDB's ConcurrentStream wrappers take,
/// so a frame's page and trailer are always built and written together.
/// </summary>
internal sealed class FramedLogStream : Stream
{
    private const int PageSize = LogFrameTrailer.PageSize;
    private const int FrameSize = LogFrameTrailer.FrameSize;

    private IStorageFile _file;
    private Func<IStorageFile>? _create;   // the log does not exist yet: created just before the first write
    private readonly Guid _imageId;
    private readonly byte[] _frame = new byte[FrameSize];            // one frame being written (LiteDB writes under a lock)
    private readonly List<(long Index, byte[] Page)> _unwritten = new(); // frames whose write failed: rewritten before anything after them
    private ulong _generation;
    private long _frames;
    private long _position;
    private bool _tailCut;

    /// <summary>Bytes past the last good frame found at open (an unfinished commit), dropped or ignored.</summary>
    public long DroppedBytes { get; }

    private FramedLogStream(IStorageFile file, Guid imageId, ulong generation, long frames, long dropped, Func<IStorageFile>? create)
    {
        _file = file; _create = create; _imageId = imageId; _generation = generation; _frames = frames; DroppedBytes = dropped;
    }

    /// <summary>
    /// Scans the log and keeps its good prefix (see <see cref="CutTail"/>). Throws if the log belongs to
    /// another image.
    /// </summary>
    public static FramedLogStream Open(IStorageFile file, Guid imageId, Func<IStorageFile>? createOnFirstWrite = null)
    {
        long physical = file.Length;
        var frame = new byte[FrameSize];
        long good = 0;
        ulong generation = 0;
        while ((good + 1) * FrameSize <= physical)
        {
            if (file.Read(good * FrameSize, frame) < FrameSize) break;
            if (!LogFrameTrailer.TryRead(frame.AsSpan(PageSize), out var t)) break;
            if (t.ImageId != imageId)
                throw new CorruptImageException($"metadata log {file.Path} belongs to image {t.ImageId}, not to {imageId}");
            if (good == 0) generation = t.Generation;
            if (t.Generation != generation || t.FrameIndex != good ||
                t.PageChecksum != LogFrameTrailer.Crc32C(frame.AsSpan(0, PageSize))) break;
            good++;
        }
        if (good == 0) generation = (ulong)Random.Shared.NextInt64(1, long.MaxValue);
        return new FramedLogStream(file, imageId, generation, good, physical - good * FrameSize, createOnFirstWrite);
    }

    /// <summary>
    /// Cuts what lies past the good frames off the file, durably, before anything is appended: a stale frame
    /// must never follow a new one. Called before the first write, so a refused open modifies nothing.
    /// </summary>
    public void CutTail()
    {
        lock (this) CutTailLocked();
    }

    private void CutTailLocked()
    {
        if (_create is not null)
        {
            _file = _create();
            _create = null;
        }
        if (_tailCut || DroppedBytes == 0) return;
        _file.SetLength(_frames * FrameSize);
        _file.Flush();   // the cut is durable before any new frame
        _tailCut = true;
    }

    public override bool CanRead => true;
    public override bool CanSeek => true;
    public override bool CanWrite => _create is not null || !_file.ReadOnly;
    public override long Length => _frames * PageSize;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value));
    }

    public override long Seek(long offset, SeekOrigin origin) => Position = origin switch
    {
        SeekOrigin.Begin => offset,
        SeekOrigin.Current => _position + offset,
        _ => Length + offset,
    };

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        lock (this) return ReadLocked(buffer);
    }

    private int ReadLocked(Span<byte> buffer)
    {
        int total = 0;
        while (!buffer.IsEmpty && _position < Length)
        {
            long index = _position / PageSize;
            int inPage = (int)(_position % PageSize);
            int n = Math.Min(buffer.Length, PageSize - inPage);
            int got = _file.Read(index * FrameSize + inPage, buffer[..n]);
            if (got < n) throw new CorruptImageException($"metadata log {_file.Path} is shorter than its frames");
            buffer = buffer[n..];
            _position += n; total += n;
        }
        return total;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>
    /// LiteDB appends whole pages at page-aligned positions; anything else is a bug, not data. A frame that
    /// cannot be written (ENOSPC) is kept and written again before anything after it, and the failure is
    /// reported by <see cref="WriteUnwritten"/> after LiteDB's commit rather than to LiteDB: LiteDB 5.0.21
    /// cannot roll back a commit that failed half-way (its transaction is left to a finalizer that throws).
    /// </summary>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        lock (this) WriteLocked(buffer);
    }

    private void WriteLocked(ReadOnlySpan<byte> buffer)
    {
        if (_position % PageSize != 0 || buffer.Length % PageSize != 0)
            throw new InvalidOperationException($"metadata log write of {buffer.Length} bytes at {_position} is not whole pages");
        CutTailLocked();
        for (int done = 0; done < buffer.Length; done += PageSize)
        {
            long index = _position / PageSize;
            var page = buffer.Slice(done, PageSize);
            _frames = Math.Max(_frames, index + 1);
            _position += PageSize;
            if (_unwritten.Count == 0)
            {
                try { WriteFrame(index, page); continue; }
                catch (StorageException) { }
            }
            // A hole here would end the log at the next open and lose later commits: keep the page, in order.
            _unwritten.Add((index, page.ToArray()));
        }
    }

    private void WriteFrame(long index, ReadOnlySpan<byte> page)
    {
        page.CopyTo(_frame);
        new LogFrameTrailer(_imageId, _generation, index, LogFrameTrailer.Crc32C(page)).Write(_frame.AsSpan(PageSize));
        _file.Write(index * FrameSize, _frame);
    }

    /// <summary>Writes the frames whose first write failed; throws if one fails again.</summary>
    public void WriteUnwritten()
    {
        lock (this) WriteUnwrittenLocked();
    }

    private void WriteUnwrittenLocked()
    {
        while (_unwritten.Count > 0)
        {
            var (index, page) = _unwritten[0];
            WriteFrame(index, page);
            _unwritten.RemoveAt(0);
        }
    }

    /// <summary>Frames kept allocated past the end of the log: room to commit what was written when the disk fills.</summary>
    public const int ReserveFrames = 32;

    /// <summary>Keeps <see cref="ReserveFrames"/> frames of space allocated past the end; false if the disk has no room.</summary>
    public bool EnsureReserve()
    {
        lock (this) return _file.Reserve((_frames + _unwritten.Count + ReserveFrames) * (long)FrameSize);
    }

    /// <summary>Durability barrier for every frame written so far (a commit is acknowledged only after it).</summary>
    public override void Flush()
    {
        IStorageFile file;
        lock (this)
        {
            WriteUnwrittenLocked();
            file = _file;
        }
        file.Flush();   // outside the lock: an fsync must not stall a reader of the log
    }

    /// <summary>LiteDB empties the log after a checkpoint (whose data-file pages it has already flushed).</summary>
    public override void SetLength(long value)
    {
        lock (this) SetLengthLocked(value);
    }

    private void SetLengthLocked(long value)
    {
        if (value != 0) throw new InvalidOperationException($"metadata log can only be emptied, not resized to {value}");
        _unwritten.Clear();
        _tailCut = true;
        _file.SetLength(0);
        _file.Flush();   // the empty log is durable before new frames: an old frame can never follow a new one
        _generation++;
        _frames = 0;
        _position = 0;
        _file.Reserve(ReserveFrames * (long)FrameSize);   // truncation gave the reserved space back: take it again while it is surely free
    }
}
