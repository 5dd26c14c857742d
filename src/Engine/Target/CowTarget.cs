using System.Runtime.CompilerServices;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Native;
using CowDisk.Engine.Ring;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;
using CowDisk.Format.Ring;
using CowDisk.Engine.Storage;

namespace CowDisk.Engine.Target;

/// <summary>
/// The "kernel half" of dm-userspace: splits byte-range I/O into block runs, looks each run up in the mapping
/// cache or asks the responder over the ring, does the data I/O itself (data file, base image, zero fill,
/// COPY_FIRST), and reports MAP_BLOCK_DONE for new extents. Thread-safe; allocates nothing per request.
/// </summary>
internal sealed class CowTarget
{
    private readonly ClusterGeometry _geometry;
    private readonly IStorageFile _dataFile;
    private readonly IBlockDevice? _base;
    private readonly RingClient _ring;
    private readonly MappingCache? _cache;
    private readonly bool _readOnly;
    // I/O enters it; a flush closes it for a moment so that no I/O that started before the flush is still
    // running when the responder releases freed extents.
    private readonly DrainGate _drain = new();

    [ThreadStatic] private static byte[]? t_blockBuffer;   // COPY_FIRST fill, one per I/O thread
    /// <summary>Data-file runs of one read gathered before they are read (a 1 MiB read of 64 KiB clusters has at most 17).</summary>
    private const int MaxDataPieces = 32;

    [InlineArray(MaxDataPieces)]
    private struct PieceBuffer { private StoragePiece _piece; }
    private static readonly byte[] s_zeros = new byte[ClusterGeometry.MaxClusterSize];

    public CowTarget(ClusterGeometry geometry, IStorageFile dataFile, IBlockDevice? baseDevice, RingClient ring,
        MappingCache? cache, bool readOnly)
    {
        _geometry = geometry; _dataFile = dataFile; _base = baseDevice; _ring = ring; _cache = cache; _readOnly = readOnly;
    }

    public long Size => _geometry.VirtualSize;

    [SkipLocalsInit]   // the piece buffer is written before it is read: no zeroing of it per call
    public void Read(long offset, Span<byte> buffer)
    {
        CheckRange(offset, buffer.Length);
        // The runs of the data file are read together at the end (or when this many wait): with direct I/O they
        // are then in flight at once. Inside the drain gate, as every read: no extent it maps is freed meanwhile.
        Unsafe.SkipInit(out PieceBuffer store);   // in the frame (no stackalloc): nothing to set up per call
        Span<StoragePiece> pieces = store;
        int waiting = 0, position = 0;
        int gate = _drain.Enter();
        try
        {
            while (position < buffer.Length)
            {
                long block = _geometry.BlockOf(offset);
                int inBlock = _geometry.OffsetInBlock(offset);
                int wantBlocks = BlocksSpanned(inBlock, buffer.Length - position);
                var run = Resolve(block, wantBlocks, MapRequestFlags.Read);
                int bytes = (int)Math.Min(buffer.Length - position, (long)run.Count * _geometry.ClusterSize - inBlock);
                var part = buffer.Slice(position, bytes);
                switch (run.Source)
                {
                    case MappingSource.Data when (run.Flags & MapResponseFlags.Layered) != 0: ReadLayered(inBlock, part, run); break;
                    case MappingSource.Data:
                        if (waiting == MaxDataPieces) { _dataFile.ReadPieces(buffer, pieces); waiting = 0; }
                        pieces[waiting++] = new StoragePiece(_geometry.ClusterOffset(run.DeviceBlock) + inBlock, position, bytes);
                        break;
                    case MappingSource.Backing: ReadBase(offset, part); break;
                    default: part.Clear(); break;
                }
                position += bytes;
                offset += bytes;
            }
            if (waiting == 1) ReadData(pieces[0].FileOffset, buffer.Slice(pieces[0].BufferOffset, pieces[0].Length));   // most reads: one run
            else if (waiting > 1) _dataFile.ReadPieces(buffer, pieces[..waiting]);
        }
        finally { _drain.Exit(gate); }
    }

    [SkipLocalsInit]
    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags)
    {
        CheckWritable();
        CheckRange(offset, buffer.Length);
        // Overwrites of the image's own committed extents (no copy, no DONE to send after them) are written
        // together at the end (or when this many wait): with direct I/O they are then in flight at once.
        Unsafe.SkipInit(out PieceBuffer store);   // in the frame (no stackalloc): nothing to set up per call
        Span<StoragePiece> pieces = store;
        int waiting = 0, position = 0;
        int gate = _drain.Enter();
        try
        {
            while (position < buffer.Length)
            {
                int left = buffer.Length - position;
                long block = _geometry.BlockOf(offset);
                int inBlock = _geometry.OffsetInBlock(offset);
                int blocks = BlocksSpanned(inBlock, left);
                // A partly written last block gets a request of its own, with its subclusters: over a cluster a
                // snapshot shares it is layered instead of copied.
                if (blocks > 1 && _geometry.OffsetInBlock(offset + left) != 0 && offset + left < _geometry.VirtualSize) blocks--;
                ulong touched = _geometry.SubclusterMask(inBlock, (int)Math.Min(left, _geometry.ClusterSize - inBlock));
                var run = Resolve(block, blocks, MapRequestFlags.Write, touched);
                int bytes = (int)Math.Min(left, (long)run.Count * _geometry.ClusterSize - inBlock);
                if (run.Source == MappingSource.Data && (run.Flags & (MapResponseFlags.Layered | MapResponseFlags.CopyFirst | MapResponseFlags.Sync)) == 0)
                {
                    if (waiting == MaxDataPieces) { WritePieces(buffer, pieces); waiting = 0; }
                    pieces[waiting++] = new StoragePiece(_geometry.ClusterOffset(run.DeviceBlock) + inBlock, position, bytes);
                }
                else WriteRun(block, inBlock, buffer.Slice(position, bytes), run);
                position += bytes;
                offset += bytes;
            }
            if (waiting > 0) WritePieces(buffer, pieces[..waiting]);
        }
        finally { _drain.Exit(gate); }
        if ((flags & WriteFlags.Fua) != 0) FlushCompleted();
    }

    /// <summary>
    /// FUA: makes this thread's completed writes durable (data fdatasync, then their mappings' commit) without
    /// draining other threads' I/O, which a full flush waits for. Its MAP_BLOCK_DONEs are ahead of it in the ring.
    /// </summary>
    private void FlushCompleted()
    {
        if (_readOnly) return;
        var rsp = _ring.Call(new RingEvent { Type = RingEventType.FlushReq, Flags = (ushort)FlushRequestFlags.NoDrain });
        if (rsp.Result != 0) throw new BlockDeviceException($"flush failed: {Native.Errno.Describe(-rsp.Result)}", null, -rsp.Result);
    }

    /// <summary>Makes a range read as zeros: partial blocks get zero bytes, whole blocks lose their extents.</summary>
    public void Zero(long offset, long length)
    {
        CheckWritable();
        CheckRange(offset, length);
        long end = offset + length;
        long firstWhole = (offset + _geometry.ClusterSize - 1) & ~((long)_geometry.ClusterSize - 1);
        long endWhole = end == _geometry.VirtualSize ? end : end & ~((long)_geometry.ClusterSize - 1);
        if (firstWhole >= endWhole)
        {
            WriteZeroBytes(offset, length);
            return;
        }
        WriteZeroBytes(offset, firstWhole - offset);   // head
        long block = _geometry.BlockOf(firstWhole);
        long endBlock = _geometry.BlockOf(endWhole - 1) + 1;
        bool noSpace = false;
        int gate = _drain.Enter();
        try
        {
            while (block < endBlock)
            {
                var rsp = _ring.Call(new RingEvent
                {
                    Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Zero,
                    Block = block, Count = (int)Math.Min(endBlock - block, int.MaxValue),
                });
                if ((rsp.ResponseFlags & MapResponseFlags.Error) != 0 && rsp.Result == -Native.Errno.ENOSPC)
                {
                    noSpace = true;
                    break;
                }
                ThrowIfError(rsp);
                block += rsp.Count;
            }
        }
        finally { _drain.Exit(gate); }
        if (noSpace) ZeroInPlace(block, endBlock);
        WriteZeroBytes(endWhole, end - endWhole);      // tail
    }

    /// <summary>
    /// The disk is full, so mappings must not change: blocks with data get zero bytes written in place, blocks
    /// that already read as zeros are left alone, and a block that reads through to the base cannot be zeroed.
    /// </summary>
    private void ZeroInPlace(long block, long endBlock)
    {
        while (block < endBlock)
        {
            BlockRun run;
            int gate = _drain.Enter();
            try { run = Resolve(block, (int)Math.Min(endBlock - block, int.MaxValue), MapRequestFlags.Read); }
            finally { _drain.Exit(gate); }
            long start = _geometry.BlockStart(block);
            long bytes = Math.Min((long)run.Count * _geometry.ClusterSize, _geometry.VirtualSize - start);
            if (run.Source == MappingSource.Backing)
                throw new BlockDeviceException($"no space left to make {bytes} bytes at {start} read as zeros", null, Native.Errno.ENOSPC);
            if (run.Source == MappingSource.Data) WriteZeroBytes(start, bytes);   // overwrites in place: no new extent
            block += run.Count;
        }
    }

    /// <summary>Waits for in-flight I/O, then asks the responder to make everything durable.</summary>
    public void Flush()
    {
        if (_readOnly) return;
        // FLUSH_REQ enters the ring while no I/O runs: every extent freed before it in ring order is out of
        // reach of all I/O, so the responder may reuse those extents once this flush is durable.
        RingClient.PendingCall call;
        _drain.Close();
        try { call = _ring.Begin(new RingEvent { Type = RingEventType.FlushReq }); }
        finally { _drain.Open(); }
        var rsp = _ring.End(call);
        if (rsp.Result != 0) throw new BlockDeviceException($"flush failed: {Native.Errno.Describe(-rsp.Result)}", null, -rsp.Result);
    }

    /// <summary>
    /// Has the responder apply its queued control operation in ring order: after every write acknowledged so far,
    /// with no I/O in flight at that point (held only while the request enters the ring). Returns 0 or -errno.
    /// An operation that only reads the mappings keeps the mapping cache (invalidateCache false).
    /// </summary>
    public int Control(bool invalidateCache = true)
    {
        RingClient.PendingCall call;
        _drain.Close();
        try
        {
            // No I/O runs now, and any that starts after must ask the responder, which answers it after this
            // operation: a mapping cached before a snapshot (exclusive then, shared now) or a revert (freed now)
            // must not serve a write in between.
            if (invalidateCache) _cache?.Clear();
            call = _ring.Begin(new RingEvent { Type = RingEventType.ControlReq });
        }
        finally { _drain.Open(); }
        return _ring.End(call).Result;
    }

    private void WriteZeroBytes(long offset, long length)
    {
        if (length <= 0) return;
        while (length > 0)
        {
            int n = (int)Math.Min(length, s_zeros.Length);
            Write(offset, s_zeros.AsSpan(0, n), WriteFlags.None);
            offset += n; length -= n;
        }
    }

    private int BlocksSpanned(int inBlock, long length) =>
        (int)Math.Min(int.MaxValue, (inBlock + length + _geometry.ClusterSize - 1) >> _geometry.ClusterShift);

    private BlockRun Resolve(long block, int blocks, MapRequestFlags kind, ulong touched = 0)
    {
        if (_cache is not null && TryResolveFromCache(block, blocks, kind, out var cached)) return cached;
        var rsp = _ring.Call(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = kind, Block = block, Count = blocks, Mask = touched });
        ThrowIfError(rsp);
        if (rsp.Count <= 0 || rsp.Count > blocks || rsp.Block != block)
            throw new CorruptImageException($"responder answered block {rsp.Block}+{rsp.Count} for {block}+{blocks}");
        var flags = rsp.ResponseFlags;
        return new BlockRun
        {
            Source = (flags & MapResponseFlags.Valid) == 0 ? MappingSource.Zero
                   : rsp.Device == DeviceIndex.Base ? MappingSource.Backing : MappingSource.Data,
            DeviceBlock = rsp.DeviceBlock,
            Count = rsp.Count,
            Flags = flags,
            Id = rsp.Id,
            SourceDevice = rsp.SourceDevice,
            SourceBlock = rsp.SourceBlock,
            Mask = rsp.Mask,
        };
    }

    private bool TryResolveFromCache(long block, int blocks, MapRequestFlags kind, out BlockRun run)
    {
        run = default;
        var first = MappingEntry.Decode(_cache!.Get(block));
        if (first.Source == MappingSource.Unallocated) return false;
        if (kind == MapRequestFlags.Write && (first.Source != MappingSource.Data || first.Shared)) return false;
        int count = 1;
        while (count < blocks)
        {
            var next = MappingEntry.Decode(_cache.Get(block + count));
            if (next.Source != first.Source || next.Shared != first.Shared) break;
            if (first.Source == MappingSource.Data && next.PhysicalCluster != first.PhysicalCluster + count) break;
            count++;
        }
        run = new BlockRun { Source = first.Source, DeviceBlock = first.PhysicalCluster, Count = count };
        return true;
    }

    private void WriteRun(long block, int inBlock, ReadOnlySpan<byte> data, in BlockRun run)
    {
        if (run.Source != MappingSource.Data) throw new CorruptImageException($"write to block {block} mapped to {run.Source}");
        long physicalOffset = _geometry.ClusterOffset(run.DeviceBlock);
        bool written = false;
        try
        {
            if ((run.Flags & MapResponseFlags.Layered) != 0)
            {
                WriteLayered(inBlock, data, run);
                written = true;
                return;
            }
            if ((run.Flags & MapResponseFlags.CopyFirst) == 0)
            {
                WriteData(physicalOffset + inBlock, data);
                written = true;
                return;
            }
            // New extent: whole blocks are written as they are, consecutive ones in one write; a partial head
            // or tail block is first filled from what it read as before (the cluster a snapshot shares, the base
            // or zeros), so no stale bytes of a freed extent can show.
            int cs = _geometry.ClusterSize;
            const MapResponseFlags freshZeroFlags = MapResponseFlags.Zero | MapResponseFlags.Fresh;
            bool freshZero = (run.Flags & freshZeroFlags) == freshZeroFlags;
            int pos = 0, bodyPos = 0, bodyLength = 0;
            long bodyPhysical = 0;
            for (int i = 0; i < run.Count && pos < data.Length; i++)
            {
                long b = block + i;
                int start = i == 0 ? inBlock : 0;
                int len = Math.Min(cs - start, data.Length - pos);
                if (start == 0 && len >= _geometry.BlockLength(b))
                {
                    if (bodyLength == 0) { bodyPos = pos; bodyPhysical = physicalOffset + (long)i * cs; }
                    bodyLength += len;
                }
                else if (freshZero)
                {
                    // The cluster was never written: the file reads zeros around the new bytes already.
                    if (bodyLength > 0) { WriteData(bodyPhysical, data.Slice(bodyPos, bodyLength)); bodyLength = 0; }
                    WriteData(physicalOffset + (long)i * cs + start, data.Slice(pos, len));
                }
                else
                {
                    if (bodyLength > 0) { WriteData(bodyPhysical, data.Slice(bodyPos, bodyLength)); bodyLength = 0; }
                    var fill = BlockBuffer().AsSpan(0, _geometry.BlockLength(b));
                    if ((run.Flags & MapResponseFlags.Zero) != 0) fill.Clear();
                    else if ((run.Flags & MapResponseFlags.FillByRead) != 0) ReadAsNow(b, fill);   // a layered block: two clusters
                    else if (run.SourceDevice == DeviceIndex.Data) ReadData(_geometry.ClusterOffset(run.SourceBlock + i), fill);   // copy on write
                    else ReadBase(_geometry.BlockStart(b), fill);
                    data.Slice(pos, len).CopyTo(fill[start..]);
                    WriteData(physicalOffset + (long)i * cs, fill);
                }
                pos += len;
            }
            if (bodyLength > 0) WriteData(bodyPhysical, data.Slice(bodyPos, bodyLength));
            written = true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailure(e);
        }
        finally
        {
            if ((run.Flags & MapResponseFlags.Sync) != 0)
            {
                // Cache first, DONE second: a discard of these blocks waits in the responder until DONE, so its
                // INVALIDATE always lands after this store and can never be undone by it. Both under the ring's
                // producer lock: a FUA write that finds this mapping in the cache sends its flush behind this DONE.
                // The data is written (not yet durable: a flush orders fdatasync before the commit).
                var done = new RingEvent { Type = RingEventType.MapBlockDone, Id = run.Id, Block = block, Count = run.Count, Result = written ? 0 : -5 };
                if (written && _cache is not null && (run.Flags & MapResponseFlags.Layered) != 0)
                {
                    // Layered now: a miss that no older answer may fill, or, once the block holds every subcluster, its own extent.
                    ulong full = _geometry.FullMask(block);
                    ulong raw = ((run.Mask | _geometry.SubclusterMask(inBlock, data.Length)) & full) == full
                        ? MappingCache.Encode(MappingSource.Data, run.DeviceBlock) : MappingCache.Uncached;
                    _ring.Post(done, (_cache, block, raw), static s => s._cache.Store(s.block, s.raw));
                }
                else if (written && _cache is not null)
                    _ring.Post(done, (_cache, block, run.Count, run.DeviceBlock), static s =>
                    {
                        for (int i = 0; i < s.Count; i++) s._cache.Store(s.block + i, MappingCache.Encode(MappingSource.Data, s.DeviceBlock + i));
                    });
                else _ring.Post(done);
            }
        }
    }

    /// <summary>
    /// A write to one layered block: its subclusters go to the block's own cluster. A subcluster the cluster does
    /// not hold yet and the write covers only partly is first filled from the cluster underneath (CopyFirst).
    /// </summary>
    private void WriteLayered(int inBlock, ReadOnlySpan<byte> data, in BlockRun run)
    {
        long own = _geometry.ClusterOffset(run.DeviceBlock);
        int ss = _geometry.SubclusterSize;
        int start = inBlock, end = inBlock + data.Length;
        if ((run.Flags & MapResponseFlags.CopyFirst) != 0)
        {
            if ((start & (ss - 1)) != 0 && (run.Mask >> (start >> _geometry.SubclusterShift) & 1) == 0) start &= ~(ss - 1);
            int last = (end - 1) >> _geometry.SubclusterShift;
            if ((end & (ss - 1)) != 0 && (run.Mask >> last & 1) == 0) end = Math.Min((last + 1) * ss, _geometry.ClusterSize);
        }
        if (start == inBlock && end == inBlock + data.Length)
        {
            WriteData(own + inBlock, data);
            return;
        }
        var span = BlockBuffer().AsSpan(start, end - start);
        long under = _geometry.ClusterOffset(run.SourceBlock);
        if (start < inBlock) ReadData(under + start, span[..(inBlock - start)]);
        if (end > inBlock + data.Length) ReadData(under + inBlock + data.Length, span[(inBlock + data.Length - start)..]);
        data.CopyTo(span[(inBlock - start)..]);
        WriteData(own + start, span);
    }

    /// <summary>Reads part of a layered block: each run of subclusters from the cluster that holds it.</summary>
    private void ReadLayered(int inBlock, Span<byte> part, in BlockRun run)
    {
        for (int pos = 0; pos < part.Length;)
        {
            int len = _geometry.SubclusterRun(run.Mask, inBlock + pos, part.Length - pos, out bool own);
            ReadData(_geometry.ClusterOffset(own ? run.DeviceBlock : run.SourceBlock) + inBlock + pos, part.Slice(pos, len));
            pos += len;
        }
    }

    /// <summary>The block as it reads now (asked again: it is layered), for the fill of a copy on write.</summary>
    private void ReadAsNow(long block, Span<byte> fill)
    {
        // Not through the cache (a layered block is never in it) and from the nested pool: this thread holds an
        // allocation, and requests deferred behind it may hold every ordinary call slot until its DONE.
        var rsp = _ring.CallNested(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Read, Block = block, Count = 1 });
        ThrowIfError(rsp);
        if (rsp.Block != block || rsp.Count != 1 || rsp.Device != DeviceIndex.Data || (rsp.ResponseFlags & MapResponseFlags.Layered) == 0)
            throw new CorruptImageException($"block {block}: a layered fill found {rsp.ResponseFlags} at {rsp.Block}+{rsp.Count}");
        ReadLayered(0, fill, new BlockRun { Source = MappingSource.Data, DeviceBlock = rsp.DeviceBlock, Count = 1, Flags = rsp.ResponseFlags, SourceBlock = rsp.SourceBlock, Mask = rsp.Mask });
    }

    private void ReadData(long physicalOffset, Span<byte> buffer)
    {
        int n = _dataFile.Read(physicalOffset, buffer);
        buffer[n..].Clear();   // the tail of a fresh cluster at the end of the file, never written: zeros, like a hole
    }

    private void WriteData(long physicalOffset, ReadOnlySpan<byte> data) => _dataFile.Write(physicalOffset, data);

    /// <summary>Overwrites in place (see <see cref="Write"/>); a failure names the file and keeps its errno.</summary>
    private void WritePieces(ReadOnlySpan<byte> buffer, ReadOnlySpan<StoragePiece> pieces)
    {
        try
        {
            if (pieces.Length == 1) _dataFile.Write(pieces[0].FileOffset, buffer.Slice(pieces[0].BufferOffset, pieces[0].Length));   // most writes: one run
            else _dataFile.WritePieces(buffer, pieces);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw WriteFailure(e);
        }
    }

    private static BlockDeviceException WriteFailure(Exception e) =>
        e is StorageException ? new BlockDeviceException(e.Message, e, StorageException.ErrnoOf(e))   // names the file and the errno
                              : new BlockDeviceException($"write to the data file failed: {e.Message}", e, StorageException.ErrnoOf(e));

    /// <summary>Reads the base at a virtual offset; past the base's end (a smaller base) reads zeros.</summary>
    private void ReadBase(long offset, Span<byte> buffer)
    {
        long available = _base is null ? 0 : Math.Clamp(_base.Size - offset, 0, buffer.Length);
        if (available > 0) _base!.Read(offset, buffer[..(int)available]);
        buffer[(int)available..].Clear();
    }

    private byte[] BlockBuffer()
    {
        var buffer = t_blockBuffer;
        if (buffer is null || buffer.Length < _geometry.ClusterSize)
            t_blockBuffer = buffer = GC.AllocateUninitializedArray<byte>(Math.Max(_geometry.ClusterSize, 64 * 1024), pinned: true);
        return buffer;
    }

    private static void ThrowIfError(in RingEvent rsp)
    {
        if ((rsp.ResponseFlags & MapResponseFlags.Error) != 0)
            throw rsp.Result == -30
                ? new BlockDeviceException("image is read-only")
                : new BlockDeviceException($"mapping request failed: {Native.Errno.Describe(-rsp.Result)}", null, -rsp.Result);
    }

    private void CheckWritable()
    {
        if (_readOnly) throw new BlockDeviceException("image is open read-only");
    }

    private void CheckRange(long offset, long length)
    {
        if (offset < 0 || length < 0 || offset > _geometry.VirtualSize - length)
            throw new BlockDeviceException($"I/O at {offset}+{length} is outside the disk ({_geometry.VirtualSize} bytes)");
    }
}
