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
        RequireOpenable(path);
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

    /// <summary>
    /// Checked before open(2): opening a FIFO waits for a writer, so an image file swapped for one hung every
    /// command; a character device (/dev/zero) or socket is no image file either.
    /// </summary>
    public static void RequireOpenable(string path)
    {
        if (HostFile.IsSpecialFile(path))
            throw new StorageException($"cannot open {path}: not a regular file (a FIFO, socket, character device or folder)", Errno.EINVAL);
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

    /// <summary>O_DIRECT is on: I/O that is not aligned goes through an aligned bounce buffer.</summary>
    private int _directAlignment;
    /// <summary>Read-modify-write of partial sectors, one at a time (only I/O below the sector size needs it).</summary>
    private readonly object _partialSectorLock = new();
    [ThreadStatic] private static BounceBuffer? t_bounce;

    /// <summary>
    /// Turns O_DIRECT on (the host page cache is bypassed). Aligned I/O (buffer, offset and length on the file
    /// system's direct-I/O alignment) goes straight through; other I/O through a per-thread aligned bounce
    /// buffer, whole sectors at a time.
    /// </summary>
    public void EnableDirectIo()
    {
        var (memory, offset) = Libc.DirectIoAlignment(Path);
        if (memory == 0 || offset == 0) throw new StorageException($"the file system of {Path} does not support direct I/O (O_DIRECT)", Native.Errno.EINVAL);
        try { Libc.SetDirect(Handle); }
        catch (IOException e) { throw StorageException.From($"cannot open {Path} for direct I/O", e); }
        _directAlignment = Math.Max(Math.Max(memory, offset), 512);
    }

    public bool DirectIo => _directAlignment != 0;

    private unsafe bool IsAligned(long offset, ReadOnlySpan<byte> buffer)
    {
        int a = _directAlignment;
        fixed (byte* p = buffer) return ((nint)p & (a - 1)) == 0 && (offset & (a - 1)) == 0 && (buffer.Length & (a - 1)) == 0;
    }

    public int Read(long offset, Span<byte> buffer)
    {
        if (_directAlignment != 0 && !IsAligned(offset, buffer)) return ReadThroughBounce(offset, buffer);
        return ReadAligned(offset, buffer);
    }

    /// <summary>
    /// With direct I/O and io_uring, every piece in flight at once (from the buffer itself, or, when only the
    /// buffer is off the alignment, through the thread's bounce buffer); otherwise one after another.
    /// </summary>
    public unsafe void ReadPieces(Span<byte> buffer, ReadOnlySpan<StoragePiece> pieces)
    {
        fixed (byte* p = buffer)
        {
            byte* bounce = BatchMemory(p, pieces, out var batch);
            if (batch is null)
            {
                IStorageFile.ReadInTurn(this, buffer, pieces);   // unaligned ones through the bounce buffer
                return;
            }
            var state = t_pieces ??= new PieceState();
            state.Count = 0;
            int laid = 0;
            foreach (var piece in pieces)
            {
                _ = buffer.Slice(piece.BufferOffset, piece.Length);   // checks the piece lies inside the buffer
                state.Add(new FileIoPiece(piece.FileOffset, (nint)(bounce == null ? p + piece.BufferOffset : bounce + laid), piece.Length));
                laid += piece.Length;
            }
            int rc = batch.Read(Handle, state.Transfers.AsSpan(0, state.Count));
            if (rc < 0) throw StorageException.FromErrno($"read of {Path} failed", -rc);
            if (bounce == null) return;
            laid = 0;
            foreach (var piece in pieces)   // out of the bounce buffer, where they were laid one after another
            {
                new ReadOnlySpan<byte>(bounce + laid, piece.Length).CopyTo(buffer.Slice(piece.BufferOffset, piece.Length));
                laid += piece.Length;
            }
        }
    }

    /// <summary>
    /// Whether the pieces go to the file as one batch (<paramref name="batch"/> not null), and through what: the
    /// buffer <paramref name="p"/> itself (null returned) when it is on the direct-I/O alignment at every piece,
    /// else the thread's bounce buffer (returned; the pieces laid in it one after another) if they all fit.
    /// No batch without direct I/O or io_uring, for fewer than two pieces, or for a piece whose place or
    /// length in the file is off the alignment.
    /// </summary>
    private unsafe byte* BatchMemory(byte* p, ReadOnlySpan<StoragePiece> pieces, out FileIoBatch? batch)
    {
        batch = null;
        int a = _directAlignment;
        if (a == 0 || pieces.Length < 2) return null;
        bool inPlace = true;
        long total = 0;
        foreach (var piece in pieces)
        {
            if (((piece.FileOffset | (long)piece.Length) & (a - 1)) != 0) return null;
            inPlace &= (((nint)p + piece.BufferOffset) & (a - 1)) == 0;
            total += piece.Length;
        }
        if (total == 0 || (!inPlace && total > BounceBuffer.Capacity)) return null;
        batch = FileIoBatch.ForThisThread();
        if (batch is null || inPlace) return null;
        fixed (byte* bounce = (t_bounce ??= new BounceBuffer()).Span((int)total, a)) return bounce;   // native memory: it never moves
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (ReadOnly) throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
        if (_directAlignment != 0 && !IsAligned(offset, data))
        {
            WriteThroughBounce(offset, data);
            return;
        }
        if (_directAlignment != 0 && data.Length > PieceThreshold)
        {
            WriteDirectPieces(offset, data);
            return;
        }
        WriteAligned(offset, data);
    }

    private unsafe void WriteAligned(long offset, ReadOnlySpan<byte> data)
    {
        long rc;
        // A polling server thread (Engine:PollMicroseconds) spins for the disk instead of sleeping in pwrite.
        if (_directAlignment != 0 && FileIoBatch.ForPollingThread() is { } batch)
            fixed (byte* p = data) rc = batch.Transfer(Handle, new FileIoPiece(offset, (nint)p, data.Length), write: true);
        else rc = Libc.PWriteFull(Handle, data, offset);
        if (rc < 0) throw StorageException.FromErrno($"write to {Path} failed", (int)-rc);
    }

    // One file system block: a write within it is all written space, all unwritten or all hole.
    private const int PieceThreshold = 4096;

    /// <summary>
    /// A direct write in pieces of one kind of host space each: written, unwritten (preallocated) or hole, as
    /// FIEMAP reports them for just this range (extents are file system blocks, so pieces stay aligned). ext4
    /// serves a direct write that spans written and unwritten space (or a hole) under its exclusive inode lock
    /// and waits for it to complete there, so such writes (a cluster whose first write was partial) went one at
    /// a time; a piece of written or unwritten space alone is an overwrite, issued beside the other writes, and
    /// with io_uring all of them are in flight at once. A range of one kind is one write, after one ioctl.
    /// </summary>
    private unsafe void WriteDirectPieces(long offset, ReadOnlySpan<byte> data)
    {
        var state = t_pieces ??= new PieceState();
        fixed (byte* p = data)
        {
            state.Count = 0;
            AddDirectPieces(state, offset, p, data.Length);
            WriteTransfers(state);
        }
    }

    /// <summary>
    /// Writes several ranges of the buffer at their places in the file; with direct I/O and io_uring, all in
    /// flight at once (each split by kind of host space, see <see cref="WriteDirectPieces"/>).
    /// </summary>
    public unsafe void WritePieces(ReadOnlySpan<byte> data, ReadOnlySpan<StoragePiece> pieces)
    {
        if (ReadOnly) throw new StorageException($"{Path} is open read-only", Native.Errno.EROFS);
        fixed (byte* p = data)
        {
            byte* bounce = BatchMemory(p, pieces, out var batch);
            if (batch is null)
            {
                IStorageFile.WriteInTurn(this, data, pieces);   // one by one (unaligned ones through the bounce buffer)
                return;
            }
            var state = t_pieces ??= new PieceState();
            state.Count = 0;
            foreach (var piece in pieces)
            {
                var part = data.Slice(piece.BufferOffset, piece.Length);   // checks the piece lies inside the buffer
                byte* from = p + piece.BufferOffset;
                if (bounce != null)
                {
                    part.CopyTo(new Span<byte>(bounce, part.Length));   // laid in the bounce buffer, on the alignment
                    from = bounce;
                    bounce += part.Length;
                }
                AddDirectPieces(state, piece.FileOffset, from, piece.Length);
            }
            WriteTransfers(state);
        }
    }

    /// <summary>Adds the aligned range to the transfers, in pieces of one kind of host space each.</summary>
    private unsafe void AddDirectPieces(PieceState state, long offset, byte* p, int length)
    {
        int count = length > PieceThreshold ? FileExtents.Runs(Handle, offset, length, state.Buffer, state.Runs) : 0;
        var runs = state.Runs.AsSpan(0, Math.Max(count, 0));
        foreach (var run in runs)
            if (((run.Start | run.End) & (_directAlignment - 1)) != 0) { count = 0; break; }   // an unaligned end of file (written without O_DIRECT)
        if (count <= 1)
        {
            state.Add(new FileIoPiece(offset, (nint)p, length));   // one kind, or a file system that cannot tell
            return;
        }
        foreach (var run in runs) state.Add(new FileIoPiece(run.Start, (nint)(p + (run.Start - offset)), (int)(run.End - run.Start)));
    }

    private unsafe void WriteTransfers(PieceState state)
    {
        var transfers = state.Transfers.AsSpan(0, state.Count);
        if (transfers.Length > 1 && FileIoBatch.ForThisThread() is { } batch)
        {
            int rc = batch.Write(Handle, transfers);
            if (rc < 0) throw StorageException.FromErrno($"write to {Path} failed", -rc);
            return;
        }
        foreach (var t in transfers) WriteAligned(t.Offset, new ReadOnlySpan<byte>((byte*)t.Address, t.Length));
    }

    private sealed class PieceState
    {
        public readonly byte[] Buffer = new byte[FileExtents.BufferSize];
        public readonly (long Start, long End, SpaceKind Kind)[] Runs = new (long, long, SpaceKind)[FileExtents.MaxExtents + 1];
        public FileIoPiece[] Transfers = new FileIoPiece[FileExtents.MaxExtents + 1];
        public int Count;

        public void Add(FileIoPiece piece)
        {
            if (Count == Transfers.Length) Array.Resize(ref Transfers, Count * 2);   // grows once to what the thread's biggest writes need
            Transfers[Count++] = piece;
        }
    }
    [ThreadStatic] private static PieceState? t_pieces;

    /// <summary>Reads the whole sectors around [offset, offset + length) into the bounce buffer, piece by piece.</summary>
    private int ReadThroughBounce(long offset, Span<byte> buffer)
    {
        int a = _directAlignment, total = 0;
        var bounce = t_bounce ??= new BounceBuffer();
        while (!buffer.IsEmpty)
        {
            long start = offset & ~(long)(a - 1);
            int skip = (int)(offset - start);
            int span = (int)Math.Min(BounceBuffer.Capacity, (skip + buffer.Length + a - 1) & ~(a - 1));
            int got = ReadAligned(start, bounce.Span(span, a));
            int useful = Math.Min(Math.Max(0, got - skip), Math.Min(buffer.Length, span - skip));
            bounce.Span(span, a).Slice(skip, useful).CopyTo(buffer);
            total += useful;
            if (useful < Math.Min(buffer.Length, span - skip)) break;   // end of file
            buffer = buffer[useful..];
            offset += useful;
        }
        return total;
    }

    /// <summary>Reads until the buffer is full or the file ends (aligned, when O_DIRECT is on).</summary>
    private unsafe int ReadAligned(long offset, Span<byte> buffer)
    {
        long n;
        // A polling server thread (Engine:PollMicroseconds) spins for the disk instead of sleeping in pread.
        if (_directAlignment != 0 && FileIoBatch.ForPollingThread() is { } batch)
            fixed (byte* p = buffer) n = batch.Transfer(Handle, new FileIoPiece(offset, (nint)p, buffer.Length), write: false);
        else n = Libc.PReadFull(Handle, buffer, offset);
        if (n < 0) throw StorageException.FromErrno($"read of {Path} failed", (int)-n);
        return (int)n;
    }

    /// <summary>
    /// Writes whole sectors from the bounce buffer: the partial first and last ones are read first (and the read
    /// and the write of a partial sector happen under one lock, so two writes into one sector do not undo each
    /// other); sectors the write covers whole need no reading.
    /// </summary>
    private void WriteThroughBounce(long offset, ReadOnlySpan<byte> data)
    {
        int a = _directAlignment;
        var bounce = t_bounce ??= new BounceBuffer();
        while (!data.IsEmpty)
        {
            long start = offset & ~(long)(a - 1);
            int skip = (int)(offset - start);
            int span = (int)Math.Min(BounceBuffer.Capacity, (skip + data.Length + a - 1) & ~(a - 1));
            int take = Math.Min(data.Length, span - skip);
            var sectors = bounce.Span(span, a);
            bool partial = skip != 0 || ((skip + take) & (a - 1)) != 0;
            if (partial) Monitor.Enter(_partialSectorLock);
            try
            {
                if (skip != 0) ReadSector(start, sectors[..a]);
                if (((skip + take) & (a - 1)) != 0 && (span > a || skip == 0)) ReadSector(start + span - a, sectors[(span - a)..]);
                data[..take].CopyTo(sectors[skip..]);
                try { RandomAccess.Write(Handle, sectors, start); }
                catch (IOException e) { throw StorageException.From($"write to {Path} failed", e); }
            }
            finally { if (partial) Monitor.Exit(_partialSectorLock); }
            data = data[take..];
            offset += take;
        }
    }

    /// <summary>One sector as it is now; past the end of the file it reads as zeros.</summary>
    private void ReadSector(long offset, Span<byte> sector)
    {
        int got = ReadAligned(offset, sector);
        sector[got..].Clear();
    }

    public void StartWriteback()
    {
        if (!ReadOnly) Libc.StartWriteback(Handle, 0, 0);   // 0, 0: the whole file
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

    /// <summary>Reads fetch only what they ask for (no readahead): see <see cref="Libc.AdviseNoReadahead"/>.</summary>
    public void AdviseNoReadahead() => Libc.AdviseNoReadahead(Handle);

    public bool Reserve(long length) => ReadOnly || Libc.Reserve(Handle, length);

    public bool Preallocate(long offset, long length) => !ReadOnly && Libc.Preallocate(Handle, offset, length);

    public long FreeSpace => Libc.FreeBytes(Handle);

    /// <summary>flock for cowdisk's own openers, and qemu's lock bytes so qemu sees (and is seen by) this use.</summary>
    public bool TryLock(bool exclusive) => FileLock.TryLock(Handle, exclusive, patient: true) && QemuImageLock.TryTake(Handle, write: exclusive);

    public void Dispose() => Handle.Dispose();
}

/// <summary>A per-thread buffer on the direct-I/O alignment, allocated once (native memory: it never moves).</summary>
internal sealed unsafe class BounceBuffer
{
    public const int Capacity = 1 << 20;
    private const int MaxAlignment = 64 << 10;
    private readonly byte* _memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(Capacity, MaxAlignment);

    public Span<byte> Span(int length, int alignment)
    {
        if (alignment > MaxAlignment || length > Capacity) throw new ArgumentOutOfRangeException(nameof(alignment), $"direct-I/O alignment {alignment} or length {length} too large");
        return new Span<byte>(_memory, length);
    }

    ~BounceBuffer() => System.Runtime.InteropServices.NativeMemory.AlignedFree(_memory);
}
