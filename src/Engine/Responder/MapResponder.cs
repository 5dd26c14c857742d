using System.Collections.Concurrent;
using System.Diagnostics;
using CowDisk.Engine.Allocation;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Ring;
using CowDisk.Engine.Snapshots;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;
using CowDisk.Format.Ring;
using CowDisk.Engine.Storage;

namespace CowDisk.Engine.Responder;

/// <summary>
/// The userspace half of dm-userspace, grown into a snapshot-disk policy: one thread that drains the request
/// ring, answers MAP_BLOCK_REQ from the in-memory mapping table, allocates extents for writes, commits a
/// mapping when MAP_BLOCK_DONE says its data is written, and group-commits dirty map chunks to LiteDB.
/// All mapping state is owned by this thread; nothing here takes a lock.
/// </summary>
internal sealed class MapResponder : IDisposable
{
    private const int ErrnoIo = 5, ErrnoNoSpace = 28, ErrnoRofs = 30;

    private readonly ClusterGeometry _geometry;
    private readonly MappingTable _table;
    private readonly ClusterAllocator _allocator;
    private readonly MetadataStore? _store;          // null when read-only
    private readonly IStorageFile _dataFile;
    private readonly bool _hasBase;
    private readonly SpscRing _requests;
    private readonly SpscRing _responses;
    private readonly Doorbell _bell;
    private readonly Doorbell _targetBell;
    private readonly ResponderSettings _settings;
    // Growth ahead of allocation, in clusters: the data file has host space below _grownTo (GrowAhead).
    private long _growStep;
    private long _grownTo;
    private readonly Thread _thread;
    private readonly History _history;
    private readonly ConcurrentQueue<ControlOp> _control = new();

    // Blocks whose new extent (or a layer's new subclusters) is being written. Readers still see the old mapping.
    private readonly Dictionary<long, Pending> _allocating = new();

    private enum PendingKind : byte
    {
        /// <summary>A new extent replaces the block's mapping at DONE.</summary>
        New,
        /// <summary>A new extent holding only Mask's subclusters is layered over the block's shared mapping at DONE.</summary>
        Layer,
        /// <summary>The block's own layered extent gains Mask's subclusters at DONE (same cluster).</summary>
        Extend,
    }

    private readonly record struct Pending(long Physical, PendingKind Kind, ulong Mask = 0);
    // Requests that touch an allocating block wait here until its DONE.
    private readonly List<RingEvent> _deferred = new();
    private readonly HashSet<long> _dirtyChunks = new();
    // Block ranges whose mappings changed since the last commit: what the next journal entry records.
    private List<(long Block, long Count)> _changed = new();
    // Chunks the journal holds changes of: written out whole at the next fold.
    private readonly HashSet<long> _unfolded = new();
    private long _journalEntries, _journalBytes, _nextJournalSequence = 1;
    // A fold rewrites every unfolded chunk and empties the journal: often enough that opening stays fast.
    private const long FoldBytes = 16L << 20;
    // LiteDB documents stop at 16 MiB; an entry past this is written as whole chunks instead.
    private const int MaxJournalEntryBytes = 1 << 20;
    // Extents unmapped but not reusable until the change is durable and in-flight I/O has drained.
    private readonly List<(long Cluster, int Count)> _pendingFree = new();
    // Freed before a flush's drain: released when the batch answering that flush is durable.
    private List<(long Cluster, int Count)> _releasable = new();
    private List<ulong> _waitingFlushes = new();
    private List<ulong> _waitingControls = new();
    private readonly GroupCommitter? _committer;   // null when read-only
    private CommitBatch? _inFlight;
    private long _firstDirtyTicks;
    // The last commit failed: its chunks are dirty again, so the dirty-chunk threshold may still be reached; the
    // retry waits for the interval (or a flush) all the same.
    private bool _lastCommitFailed;
    private volatile bool _stopping;
    private Exception? _fatal;

    public long Commits { get; private set; }

    public MapResponder(ClusterGeometry geometry, MappingTable table, ClusterAllocator allocator, MetadataStore? store,
        IStorageFile dataFile, bool hasBase, SpscRing requests, SpscRing responses, Doorbell bell, Doorbell targetBell,
        ResponderSettings settings, History? history = null)
    {
        _history = history ?? new History(table, new EpochTree(store?.Image.Epoch ?? 0, store?.Image.NextEpoch ?? 0));
        if (store is not null)
        {
            _journalEntries = store.Journal.Entries;
            _journalBytes = store.Journal.Bytes;
            _nextJournalSequence = store.Journal.NextSequence;
            _unfolded.UnionWith(store.Journal.Unfolded);
        }
        _history.Free = FreeLater;
        _geometry = geometry; _table = table; _allocator = allocator; _store = store; _dataFile = dataFile;
        _hasBase = hasBase; _requests = requests; _responses = responses; _bell = bell; _targetBell = targetBell;
        _settings = settings;
        _growStep = settings.GrowStepBytes > 0 ? Math.Max(1, settings.GrowStepBytes >> geometry.ClusterShift) : 0;   // at least a cluster
        _grownTo = geometry.ClustersIn(dataFile.Length);
        if (store is not null) _committer = new GroupCommitter(store, dataFile, bell);
        _thread = new Thread(Run) { IsBackground = true, Name = "cowdisk-responder" };
        _thread.Start();
    }

    private uint Epoch => _history.Head;

    /// <summary>Queues a snapshot change; the target then posts a CONTROL_REQ that applies it in ring order.</summary>
    public void Enqueue(ControlOp op) => _control.Enqueue(op);

    private void Run()
    {
        try { Serve(); }
        catch (Exception e)
        {
            // Not a request's fault (Handle's failures make the responder fatal and it goes on answering EIO):
            // the loop itself broke. Ending the thread, not the process; the finally tells the callers.
            _fatal ??= e;
            Console.Error.WriteLine($"cowdisk: responder died: {e.Message}");
        }
        finally
        {
            // Stopped or died: nothing will answer again, so waiting callers must fail now, not wait for ever.
            _targetBell.Close();
        }
    }

    private void Serve()
    {
        long malformedSlots = 0;
        while (!_stopping)
        {
            int handled = 0;
            while (_requests.TryConsume(out var ev, out bool malformed))
            {
                handled++;
                if (malformed || !IsRequest(ev.Type))
                {
                    RejectMalformed(ev, firstOne: malformedSlots++ == 0);
                    continue;
                }
                if (_fatal is null)
                {
                    try { Handle(ev); }
                    catch (Exception e) { _fatal = e; Console.Error.WriteLine($"cowdisk: responder stopped: {e.Message}"); FailPending(); }
                }
                if (_fatal is not null) FailRequest(ev);
            }
            handled += CompleteCommits();
            if (handled > 0) _targetBell.Ring();   // one wake per batch
            if (CommitDue()) StartCommit();
            if (handled == 0) _bell.Wait(_dirtyChunks.Count > 0 ? Math.Max(1, _settings.CommitIntervalMs / 4) : 200);
        }
    }

    private static bool IsRequest(RingEventType type) =>
        type is RingEventType.MapBlockReq or RingEventType.MapBlockDone or RingEventType.FlushReq or RingEventType.ControlReq;

    // A slot of an unknown type, or of a type only the responder sends: answer its id with EINVAL and go on.
    // Its caller, if it has one, fails that call.
    private void RejectMalformed(in RingEvent ev, bool firstOne)
    {
        if (firstOne) Console.Error.WriteLine($"cowdisk: malformed ring event (type {(ushort)ev.Type}, id {ev.Id}) answered with EINVAL; later ones are not logged");
        Respond(Error(ev, -Native.Errno.EINVAL));
        if (_allocating.Count == 0 || _fatal is not null) return;
        // It may have been the DONE of an extent being written: that write was acknowledged and its mapping is
        // lost. No later flush may report it durable, and no write to those blocks may wait for ever: fatal.
        _fatal = new CorruptImageException($"malformed ring event while {_allocating.Count} blocks await their MAP_BLOCK_DONE");
        Console.Error.WriteLine($"cowdisk: responder stopped: {_fatal.Message}");
        FailPending();
    }

    private bool CommitDue() =>
        _dirtyChunks.Count > 0 &&
        ((!_lastCommitFailed && _dirtyChunks.Count >= _settings.CommitMaxDirtyChunks) ||
         Stopwatch.GetElapsedTime(_firstDirtyTicks).TotalMilliseconds >= _settings.CommitIntervalMs);

    private void Handle(in RingEvent ev)
    {
        switch (ev.Type)
        {
            case RingEventType.MapBlockReq:
                if (!TryAnswer(ev)) _deferred.Add(ev);
                break;
            case RingEventType.MapBlockDone:
                Done(ev);
                RetryDeferred();
                break;
            case RingEventType.FlushReq:
                if (_committer is null)
                {
                    Respond(new RingEvent { Type = RingEventType.FlushRsp, Id = ev.Id });
                    break;
                }
                // The target drained its I/O before sending this: what was freed so far may be reused once durable.
                // A FUA write's flush drained nothing: some I/O may still reach those extents, so they wait.
                if (((FlushRequestFlags)ev.Flags & FlushRequestFlags.NoDrain) == 0)
                {
                    _releasable.AddRange(_pendingFree);
                    _pendingFree.Clear();
                }
                _waitingFlushes.Add(ev.Id);
                StartCommit();
                break;
            case RingEventType.ControlReq:
                Control(ev);
                break;
            default:
                throw new CorruptImageException($"responder got unexpected ring event {ev.Type}");
        }
    }

    /// <summary>Answers a map request, or returns false if it touches a block still being allocated.</summary>
    private bool TryAnswer(in RingEvent req)
    {
        // Checked before any arithmetic: a block far past the end must not wrap into a valid-looking count.
        if (req.Block < 0 || req.Block >= _geometry.BlockCount || req.Count <= 0)
        {
            Respond(Error(req, -ErrnoIo));
            return true;
        }
        int count = (int)Math.Min(req.Count, _geometry.BlockCount - req.Block);
        var flags = req.RequestFlags;
        if ((flags & (MapRequestFlags.Write | MapRequestFlags.Zero)) != 0)
        {
            if (_store is null) { Respond(Error(req, -ErrnoRofs)); return true; }
            if (_allocating.ContainsKey(req.Block)) return false;
            if ((flags & MapRequestFlags.Zero) != 0)
            {
                for (long b = req.Block; b < req.Block + count; b++)
                    if (_allocating.ContainsKey(b)) return false;
                // A full disk: changing mappings would eat the log's reserve; the target zeroes bytes instead.
                if (_store is { SpaceLow: true } && !_store.RenewReserve()) { Respond(Error(req, -ErrnoNoSpace)); return true; }
                ApplyZero(req, count);
            }
            else AnswerWrite(req, count);
            return true;
        }
        AnswerRead(req, count);
        return true;
    }

    private void AnswerRead(in RingEvent req, int count)
    {
        var first = _table.GetMapping(req.Block);
        var rsp = Response(req);
        int run = 1;
        if (first.IsData && Layered(req.Block, first, out var layer))
        {
            Respond(LayeredResponse(req, first, layer));
            return;
        }
        if (first.IsData)
        {
            bool shared = _history.IsShared(first.Epoch);
            while (run < count && _table.GetMapping(req.Block + run) is { IsData: true } m && m.PhysicalCluster == first.PhysicalCluster + run &&
                   _history.IsShared(m.Epoch) == shared && !Layered(req.Block + run, m, out _)) run++;
            // A cluster a snapshot reads may be cached for reads, never written in place.
            rsp.ResponseFlags = MapResponseFlags.Valid | (shared ? MapResponseFlags.Shared : MapResponseFlags.None);
            rsp.Device = DeviceIndex.Data;
            rsp.DeviceBlock = first.PhysicalCluster;
        }
        else if (ReadsAsZero(first))
        {
            while (run < count && ReadsAsZero(_table.GetMapping(req.Block + run))) run++;
            rsp.ResponseFlags = MapResponseFlags.Zero;
        }
        else
        {
            while (run < count && _table.Get(req.Block + run) == 0) run++;
            rsp.ResponseFlags = MapResponseFlags.Valid;
            rsp.Device = DeviceIndex.Base;
            rsp.DeviceBlock = req.Block;
        }
        rsp.Count = run;
        Respond(rsp);
    }

    private bool ReadsAsZero(in Format.Mapping.Mapping m) =>
        m.Source == MappingSource.Zero || (m.Source == MappingSource.Unallocated && !_hasBase);

    private bool Layered(long block, in Format.Mapping.Mapping m, out Layer layer)
    {
        if (_history.Layers.Count == 0) { layer = default; return false; }
        return _history.Layers.TryGet(block, m.Epoch, out layer);
    }

    // One layered block: its own subclusters (Mask) in DeviceBlock, the others in the shared cluster under it.
    private RingEvent LayeredResponse(in RingEvent req, in Format.Mapping.Mapping top, in Layer layer,
        MapResponseFlags more = MapResponseFlags.None)
    {
        var rsp = Response(req);
        rsp.ResponseFlags = MapResponseFlags.Valid | MapResponseFlags.Layered | more |
                            (_history.IsShared(top.Epoch) ? MapResponseFlags.Shared : MapResponseFlags.None);
        rsp.Device = DeviceIndex.Data;
        rsp.DeviceBlock = top.PhysicalCluster;
        rsp.SourceDevice = DeviceIndex.Data;
        rsp.SourceBlock = layer.UnderCluster;
        rsp.Mask = layer.Mask;
        rsp.Count = 1;
        return rsp;
    }

    private void AnswerWrite(in RingEvent req, int count)
    {
        var first = _table.GetMapping(req.Block);
        var rsp = Response(req);
        int run = 1;
        Layer layer = default;
        bool layered = first.IsData && Layered(req.Block, first, out layer);
        // The subclusters of the first block this write touches (a request without a mask covers the whole block).
        ulong full = _geometry.FullMask(req.Block);
        ulong touched = req.Mask == 0 ? full : req.Mask & full;
        if (layered && !_history.IsShared(first.Epoch))
        {
            // The head's own layered extent: subclusters it holds are overwritten in place; new ones are added
            // to its mask when their data is written (their partial edges filled from the cluster underneath).
            if ((touched & ~layer.Mask) == 0) { Respond(LayeredResponse(req, first, layer)); return; }
            _allocating.Add(req.Block, new Pending(first.PhysicalCluster, PendingKind.Extend, touched));
            Respond(LayeredResponse(req, first, layer, MapResponseFlags.CopyFirst | MapResponseFlags.Sync));
            return;
        }
        if (first.IsData && !_history.IsShared(first.Epoch))
        {
            // Written before and read by no snapshot: overwrite in place.
            while (run < count && !_allocating.ContainsKey(req.Block + run) &&
                   _table.GetMapping(req.Block + run) is { IsData: true } m && m.PhysicalCluster == first.PhysicalCluster + run &&
                   !_history.IsShared(m.Epoch) && !Layered(req.Block + run, m, out _)) run++;
            rsp.ResponseFlags = MapResponseFlags.Valid;
            rsp.Device = DeviceIndex.Data;
            rsp.DeviceBlock = first.PhysicalCluster;
            rsp.Count = run;
            Respond(rsp);
            return;
        }
        // A full disk: the metadata log keeps room for the mappings already written, not for new ones.
        if (_store is { SpaceLow: true } && !_store.RenewReserve())
        {
            Respond(Error(req, -ErrnoNoSpace));
            return;
        }
        if (first.IsData && !layered && _geometry.HasSubclusters && touched != full)
        {
            // A first partial write to a cluster a snapshot shares: a new cluster takes only the subclusters
            // written, layered over the shared one, so nothing else is copied (docs/FORMAT.md §9.6).
            long cluster = AllocateClusters(1, out _, out _);
            if (cluster < 0) { Respond(Error(req, -ErrnoNoSpace)); return; }
            if (cluster > MappingEntry.MaxPhysicalCluster) throw new CorruptImageException("data file is past the addressable size");
            _allocating.Add(req.Block, new Pending(cluster, PendingKind.Layer, touched));
            var under = new Layer(0, first.Epoch, first.PhysicalCluster);
            var answer = LayeredResponse(req, Format.Mapping.Mapping.Data(cluster, Epoch), under, MapResponseFlags.CopyFirst | MapResponseFlags.Sync);
            answer.ResponseFlags &= ~MapResponseFlags.Shared;
            Respond(answer);
            return;
        }
        if (layered)
        {
            // A layered extent a snapshot shares: copied whole into a new extent (a layer never lies over a layer);
            // the fill is the block as it reads now, from both clusters.
            long cluster = AllocateClusters(1, out _, out _);
            if (cluster < 0) { Respond(Error(req, -ErrnoNoSpace)); return; }
            if (cluster > MappingEntry.MaxPhysicalCluster) throw new CorruptImageException("data file is past the addressable size");
            _allocating.Add(req.Block, new Pending(cluster, PendingKind.New));
            rsp.ResponseFlags = MapResponseFlags.Valid | MapResponseFlags.CopyFirst | MapResponseFlags.Sync | MapResponseFlags.FillByRead;
            rsp.Device = DeviceIndex.Data;
            rsp.DeviceBlock = cluster;
            rsp.SourceDevice = DeviceIndex.Data;
            rsp.SourceBlock = first.PhysicalCluster;
            rsp.Count = 1;
            Respond(rsp);
            return;
        }
        // New extent; its fill for partial blocks comes from what the block reads as now: the cluster a snapshot
        // shares (copy on write), zeros, or the base.
        bool copy = first.IsData;
        bool zeroFill = !copy && ReadsAsZero(first);
        if (copy)
            while (run < count && !_allocating.ContainsKey(req.Block + run) &&
                   _table.GetMapping(req.Block + run) is { IsData: true } m && m.PhysicalCluster == first.PhysicalCluster + run &&
                   !Layered(req.Block + run, m, out _)) run++;
        else
            while (run < count && !_allocating.ContainsKey(req.Block + run) &&
                   _table.GetMapping(req.Block + run) is var m && !m.IsData && ReadsAsZero(m) == zeroFill) run++;
        long physical = AllocateClusters(run, out int got, out bool fresh);
        if (physical < 0)
        {
            Respond(Error(req, -ErrnoNoSpace));   // the data device is full: the write fails, nothing changes
            return;
        }
        if (physical + got - 1 > MappingEntry.MaxPhysicalCluster)
            throw new CorruptImageException("data file is past the addressable size");
        for (int i = 0; i < got; i++) _allocating.Add(req.Block + i, new Pending(physical + i, PendingKind.New));
        rsp.ResponseFlags = MapResponseFlags.Valid | MapResponseFlags.CopyFirst | MapResponseFlags.Sync |
                            (zeroFill ? MapResponseFlags.Zero : MapResponseFlags.None) |
                            (zeroFill && fresh ? MapResponseFlags.Fresh : MapResponseFlags.None);
        rsp.Device = DeviceIndex.Data;
        rsp.DeviceBlock = physical;
        rsp.SourceDevice = copy ? DeviceIndex.Data : DeviceIndex.Base;
        rsp.SourceBlock = copy ? first.PhysicalCluster : req.Block;
        rsp.Count = got;
        Respond(rsp);
    }

    /// <summary>Allocates clusters for a write (see <see cref="ClusterAllocator.Allocate"/>), growing the data file ahead of them.</summary>
    private long AllocateClusters(int maxCount, out int count, out bool fresh)
    {
        long physical = _allocator.Allocate(maxCount, out count, out fresh);
        if (physical >= 0 && physical + count > _grownTo && _growStep > 0) GrowAhead(physical + count);
        return physical;
    }

    /// <summary>
    /// Gives the data file host space up to a step past <paramref name="end"/> (clusters), so a direct write to a new
    /// cluster is an overwrite of allocated (unwritten) space for the host file system: served beside other
    /// writes, not one by one under its inode lock. The space reads as zeros, so fresh clusters stay fresh. A step
    /// takes at most a quarter of the file system's free space, so near a full disk it shrinks to nothing and
    /// leaves the space to the writes themselves (and to other files). After a failed step (a data device, no
    /// support, a race for the last free space) the file grows by writing, as without a step, until the next open.
    /// </summary>
    private void GrowAhead(long end)
    {
        long from = _dataFile.Length, to = _geometry.ClusterOffset(end + _growStep);
        long free = _dataFile.FreeSpace;
        if (free >= 0) to = Math.Min(to, from + (free / 4 & ~(long)(_geometry.ClusterSize - 1)));
        _grownTo = end;   // at the latest, the next allocation past end tries again
        if (to <= from) return;
        if (!_dataFile.Preallocate(from, to - from))
        {
            _growStep = 0;   // unsupported, or out of room despite the quarter rule: this open stops trying
            return;
        }
        _grownTo = _geometry.ClustersIn(to);
    }

    private void ApplyZero(in RingEvent req, int count)
    {
        ulong zero = _hasBase ? MappingEntry.Encode(new Format.Mapping.Mapping(MappingSource.Zero, 0, Epoch)) : 0;
        long end = req.Block + count;
        for (long b = req.Block; b < end;)
        {
            long chunk = MappingTable.ChunkOf(b);
            long chunkEnd = Math.Min(end, MappingTable.ChunkStart(chunk + 1));
            bool whole = b == MappingTable.ChunkStart(chunk) && chunkEnd == MappingTable.ChunkStart(chunk + 1);   // a full 4096 blocks
            if (_table.IsUniform(chunk, out ulong uniform))
            {
                // Nothing to drop: a chunk that already reads as zeros stays, any other becomes zeros in O(1).
                if (uniform == zero || MappingEntry.SourceOf(uniform) == MappingSource.Zero) { b = chunkEnd; continue; }
                if (whole) { _table.SetChunk(chunk, zero); MarkChanged(b, chunkEnd - b); b = chunkEnd; continue; }
            }
            bool changed = false;
            long from = b;
            for (; b < chunkEnd; b++)
            {
                ulong raw = _table.Get(b);
                if (raw == zero) continue;
                var old = MappingEntry.Decode(raw);
                if (old.Source == MappingSource.Zero) continue;   // reads as zeros already; a snapshot may share it
                _table.Set(b, zero);
                _history.Drop(b, old);   // after the table changed: freed, or kept dead for a snapshot
                changed = true;
            }
            if (changed) MarkChanged(from, chunkEnd - from);
            // A whole chunk of zeros shares one array, whatever it held before.
            if (whole && zero != 0 && changed && AllEqual(chunk, zero)) _table.SetChunk(chunk, zero);
        }
        Respond(new RingEvent { Type = RingEventType.Invalidate, Block = req.Block, Count = count });
        var rsp = Response(req);
        rsp.ResponseFlags = MapResponseFlags.Zero;
        rsp.Count = count;
        Respond(rsp);
    }

    private bool AllEqual(long chunk, ulong raw)
    {
        foreach (ulong e in _table.ChunkEntries(chunk)) if (e != raw) return false;
        return true;
    }

    private void Done(in RingEvent done)
    {
        for (long b = done.Block; b < done.Block + done.Count; b++)
        {
            if (!_allocating.Remove(b, out var pending))
                throw new CorruptImageException($"MAP_BLOCK_DONE for block {b}, which was not being allocated");
            if (done.Result != 0)
            {
                if (pending.Kind != PendingKind.Extend) _allocator.Release(pending.Physical, 1);   // never referenced: reusable at once
                continue;
            }
            var old = _table.GetMapping(b);
            switch (pending.Kind)
            {
                case PendingKind.New:
                    _table.Set(b, MappingEntry.Encode(Format.Mapping.Mapping.Data(pending.Physical, Epoch)));
                    _history.Drop(b, old);   // the extent it replaces: freed, or kept dead for a snapshot
                    break;
                case PendingKind.Layer:
                    var top = Format.Mapping.Mapping.Data(pending.Physical, Epoch);
                    _table.Set(b, MappingEntry.Encode(top));
                    _history.AddLayer(b, top, pending.Mask, old);   // the shared extent stays for the other subclusters
                    break;
                case PendingKind.Extend:
                    if (!old.IsData || old.PhysicalCluster != pending.Physical)
                        throw new CorruptImageException($"block {b} changed while its layer was being written");
                    _history.ExtendLayer(b, old.Epoch, pending.Mask, _geometry.FullMask(b));
                    break;
            }
            MarkDirty(b);
        }
        // No INVALIDATE here: the writer stores the new mapping in the target's cache itself, and a racing
        // older answer cannot overwrite it (the cache inserts answers only into empty slots).
    }

    /// <summary>
    /// A snapshot change, in ring order: every write acknowledged before it has its mapping in the table, and no
    /// I/O is in flight (the target drained before posting). Answered once the change is durable.
    /// </summary>
    private void Control(in RingEvent ev)
    {
        if (!_control.TryDequeue(out var op))
        {
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -Native.Errno.EINVAL });
            return;
        }
        if (op.Kind == ControlKind.ExportView)
        {
            // A reader that cannot take the image's lock gets the snapshot's mappings; its clusters do not move
            // while the snapshot exists, and the reader's view lock keeps the snapshot from being deleted.
            var viewed = _history.Tree.Find(op.Name);
            if (viewed is null) op.Refused = $"no snapshot named '{op.Name}'";
            else
            {
                // Read-only work: a failure refuses the export and leaves the disk serving.
                try { op.Export = ViewExport.Encode(_history.BuildView(viewed.Epoch), _history.Layers); op.ExportEpoch = viewed.Epoch; }
                catch (Exception e) when (e is not OutOfMemoryException) { op.Refused = $"cannot export snapshot '{op.Name}': {e.Message}"; }
            }
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = op.Refused is null ? 0 : -Native.Errno.EINVAL });
            return;
        }
        if (op.Kind == ControlKind.Invoke)
        {
            int invokeResult = 0;
            try { op.Body!(); }   // reads only: a failure fails the request, not the disk
            catch (Exception e) when (e is not OutOfMemoryException) { op.Refused = e.Message; invokeResult = -Native.Errno.EINVAL; }
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = invokeResult });
            return;
        }
        if (op.Kind == ControlKind.ListSnapshots)
        {
            op.List = ListSnapshots();
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id });
            return;
        }
        if (_committer is null)
        {
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -ErrnoRofs });
            return;
        }
        // A full disk: the change's metadata needs room the reserve keeps for data already written.
        if (_store is { SpaceLow: true } && !_store.RenewReserve())
        {
            op.Refused = "no space left on the device for the snapshot's metadata";
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -ErrnoNoSpace });
            return;
        }
        var snap = _history.Tree.Find(op.Name);
        if (op.Kind is ControlKind.CreateSnapshot or ControlKind.RevertSnapshot && _history.Tree.Exhausted)
        {
            op.Refused = EpochTree.ExhaustedMessage;
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -Native.Errno.EINVAL });
            return;
        }
        switch (op.Kind)
        {
            case ControlKind.CreateSnapshot:
                if (SnapshotInfo.Invalid(op.Name) is { } why) op.Refused = why;
                else if (snap is not null) op.Refused = $"a snapshot named '{op.Name}' already exists";
                else
                {
                    op.Result = _history.Create(op.Name, op.CreatedUtc);
                    InvalidateAll();   // cached clusters are shared now: writes must ask again
                }
                break;
            case ControlKind.DeleteSnapshot:
                if (snap is null) op.Refused = $"no snapshot named '{op.Name}'";
                else if (LiveClone(snap) is { } clone)
                    op.Refused = $"snapshot '{snap.Name}' is the base of clone {clone.Path}; delete the clone first";
                else if (ViewReadersOrUnknown())
                    op.Refused = $"snapshot '{snap.Name}' cannot be deleted while another process reads a snapshot view of this image (an attached snapshot or a clone in use); close it first";
                else { _history.Delete(snap); op.Result = snap; }
                break;
            case ControlKind.Preallocate:
                Preallocate(op);
                break;
            case ControlKind.DropUnreadDeadExtents:
                op.Result = new SnapshotInfo(0, "", Epoch, DateTime.UtcNow) { ExclusiveBytes = _history.DropUnread() * _geometry.ClusterSize };
                break;
            case ControlKind.AddClone:
                if (snap is null) op.Refused = $"no snapshot named '{op.Name}'";
                else
                {
                    _history.Tree.AddClone(op.Clone! with { Epoch = snap.Epoch });
                    _history.TreeDirty = true;
                    op.Result = snap;
                }
                break;
            case ControlKind.RevertSnapshot:
                if (snap is null) op.Refused = $"no snapshot named '{op.Name}'";
                else
                {
                    _history.Revert(snap, MarkDirty);
                    InvalidateAll();
                    op.Result = snap;
                }
                break;
        }
        if (op.Refused is not null)
        {
            Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -Native.Errno.EINVAL });
            return;
        }
        // No I/O is in flight: what was freed so far (and by this change) may be reused once it is durable.
        _releasable.AddRange(_pendingFree);
        _pendingFree.Clear();
        _waitingControls.Add(ev.Id);
        StartCommit();
    }

    /// <summary>The snapshots, oldest first, with the bytes each alone holds. Responder thread, or a stopped/read-only responder.</summary>
    internal List<SnapshotInfo> ListSnapshots() => _history.ListSnapshots(_geometry.ClusterSize);

    /// <summary>
    /// Maps every unallocated block of the range to a new cluster that reads as zeros (qemu-img's
    /// preallocation=metadata): the data file grows sparse, nothing is written but the mappings.
    /// </summary>
    private void Preallocate(ControlOp op)
    {
        if (_hasBase) { op.Refused = "preallocation would hide the base image"; return; }
        long end = op.FirstBlock + op.BlockCount, highest = -1;
        var made = new List<(long Block, long Physical, int Count)>();
        for (long b = op.FirstBlock; b < end;)
        {
            if (_table.Get(b) != 0) { b++; continue; }
            int want = 1;
            while (b + want < end && want < 1 << 20 && _table.Get(b + want) == 0) want++;
            long physical = _allocator.Allocate(want, out int got, out bool fresh);
            if (physical < 0)
            {
                // Refused as a whole: what this call mapped so far is taken back (never committed, never written).
                op.Refused = "no space left for the preallocated clusters";
                foreach (var (block, cluster, count) in made)
                {
                    for (int i = 0; i < count; i++) _table.Set(block + i, 0);
                    _allocator.Release(cluster, count);
                }
                return;
            }
            made.Add((b, physical, got));
            if (!fresh)   // a reused cluster may hold old bytes (a data device): zero it like any partial write would
                for (int i = 0; i < got; i++) _dataFile.Write(_geometry.ClusterOffset(physical + i), new byte[_geometry.ClusterSize]);
            for (int i = 0; i < got; i++) _table.Set(b + i, MappingEntry.Encode(Format.Mapping.Mapping.Data(physical + i, Epoch)));
            MarkChanged(b, got);
            highest = Math.Max(highest, physical + got - 1);
            b += got;
        }
        // The mapped clusters lie inside the data file (as open requires); the data fdatasync before the commit makes the size durable.
        long length = _geometry.ClusterOffset(highest + 1);
        if (highest >= 0 && _dataFile.Length < length) _dataFile.SetLength(length);
        op.Result = new SnapshotInfo(0, "", Epoch, DateTime.UtcNow);
    }

    /// <summary>A clone still made from this snapshot: its file exists and is that image. Stale records are dropped.</summary>
    private CloneRef? LiveClone(SnapshotInfo snap)
    {
        foreach (var clone in _history.Tree.ClonesOf(snap.Epoch).ToList())
        {
            if (_history.CloneExists(clone)) return clone;
            _history.Tree.RemoveClone(clone);
            _history.TreeDirty = true;
        }
        return null;
    }

    // A lock the file system cannot report on counts as held: refusing a delete is safe, freeing under a reader is not.
    private bool ViewReadersOrUnknown()
    {
        try { return _history.ViewReaders(); }
        catch (IOException) { return true; }
    }

    private void InvalidateAll() =>
        Respond(new RingEvent { Type = RingEventType.Invalidate, Flags = (ushort)InvalidateFlags.All, Count = 0 });

    /// <summary>The image's history (epochs, snapshots, dead extents). Responder thread only, or while it is stopped.</summary>
    internal History History => _history;

    private void RetryDeferred()
    {
        if (_deferred.Count == 0) return;
        for (int i = 0; i < _deferred.Count;)
        {
            if (TryAnswer(_deferred[i])) _deferred.RemoveAt(i);
            else i++;
        }
    }

    private void FreeLater(long cluster)
    {
        if (_pendingFree.Count > 0 && _pendingFree[^1] is var last && last.Cluster + last.Count == cluster)
            _pendingFree[^1] = (last.Cluster, last.Count + 1);
        else _pendingFree.Add((cluster, 1));
    }

    private void MarkDirty(long block) => MarkChanged(block, 1);

    private void MarkChanged(long block, long count)
    {
        if (_dirtyChunks.Count == 0) _firstDirtyTicks = Stopwatch.GetTimestamp();
        for (long c = MappingTable.ChunkOf(block); c <= MappingTable.ChunkOf(block + count - 1); c++) _dirtyChunks.Add(c);
        // Neighbouring single blocks (a DONE per block) are merged as they come, so the list stays short.
        if (_changed.Count > 0 && _changed[^1] is var last && last.Block + last.Count == block) _changed[^1] = (last.Block, last.Count + count);
        else _changed.Add((block, count));
    }

    /// <summary>Hands the dirty chunks and waiting flushes to the committer, unless a batch is in flight.</summary>
    private void StartCommit()
    {
        if (_committer is null || _inFlight is not null || _fatal is not null) return;
        if (_dirtyChunks.Count == 0 && _waitingFlushes.Count == 0 && _waitingControls.Count == 0 &&
            _history.DirtyDeadChunks.Count == 0 && _history.Layers.DirtyPages.Count == 0 && !_history.TreeDirty) return;
        var changes = new MetadataChanges();
        // A commit writes what changed (a journal entry); now and then the journal is folded into whole chunks,
        // and so is a change too big for one entry (it would cost more than the chunks it touches).
        byte[]? entry = null;
        if (_journalEntries < _settings.JournalFoldEntries && _journalBytes < FoldBytes && _changed.Count > 0)
        {
            entry = JournalCodec.Encode(_table, _changed);
            if (entry.Length > MaxJournalEntryBytes) entry = null;
        }
        if (entry is null && (_changed.Count > 0 || _journalEntries >= _settings.JournalFoldEntries || _journalBytes >= FoldBytes))
        {
            _unfolded.UnionWith(_dirtyChunks);
            foreach (long c in _unfolded) changes.Chunks.Add((c, ExtentCodec.Encode(_table, c)));
            changes.FoldJournal = true;
        }
        else if (entry is not null)
        {
            changes.Journal = (_nextJournalSequence++, entry);
            _unfolded.UnionWith(_dirtyChunks);
        }
        var changedRanges = _changed;
        _changed = new List<(long, long)>();
        var dirtied = _dirtyChunks.ToList();
        _dirtyChunks.Clear();
        foreach (long c in _history.DirtyDeadChunks) changes.Dead.Add((c, _history.EncodeChunk(c)));
        _history.DirtyDeadChunks.Clear();
        foreach (long p in _history.Layers.DirtyPages) changes.Layers.Add((p, _history.Layers.EncodePage(p)));
        _history.Layers.DirtyPages.Clear();
        if (_history.TreeDirty)
        {
            var (added, removed, nodesAdded, nodesRemoved) = _history.Tree.TakeChanges();
            changes.SnapshotsAdded.AddRange(added);
            changes.SnapshotsRemoved.AddRange(removed);
            changes.EpochsAdded.AddRange(nodesAdded);
            changes.EpochsRemoved.AddRange(nodesRemoved);
            var (clonesAdded, clonesRemoved) = _history.Tree.TakeCloneChanges();
            changes.ClonesAdded.AddRange(clonesAdded);
            changes.ClonesRemoved.AddRange(clonesRemoved);
            changes.Image = _store!.Image with { Epoch = _history.Head, NextEpoch = _history.Tree.NextEpoch };
            _history.TreeDirty = false;
        }
        _inFlight = new CommitBatch
        {
            Changes = changes, FlushIds = _waitingFlushes, ControlIds = _waitingControls, Release = _releasable,
            ChangedRanges = changedRanges, DirtyChunks = dirtied,
        };
        _waitingFlushes = new List<ulong>();
        _waitingControls = new List<ulong>();
        _releasable = new List<(long, int)>();
        _committer.Submit(_inFlight);
    }

    private int CompleteCommits()
    {
        if (_committer is null || !_committer.TryTakeCompleted(out var batch)) return 0;
        _inFlight = null;
        _lastCommitFailed = batch.Error is not null;
        int result = 0;
        if (batch.Error is not null)
        {
            // Nothing of the batch is durable; the table still holds it. After a failed write (ENOSPC) its chunks
            // are committed again at the next flush or interval, and its freed extents stay unreusable until then.
            result = -StorageException.ErrnoOf(batch.Error);
            foreach (long chunk in batch.DirtyChunks) _dirtyChunks.Add(chunk);
            _changed.AddRange(batch.ChangedRanges);
            foreach (var (chunk, _) in batch.Changes.Dead) _history.DirtyDeadChunks.Add(chunk);
            foreach (var (page, _) in batch.Changes.Layers) _history.Layers.DirtyPages.Add(page);
            if (batch.DirtyChunks.Count + batch.Changes.Dead.Count + batch.Changes.Layers.Count > 0) _firstDirtyTicks = Stopwatch.GetTimestamp();   // retry after an interval, not in a loop
            _releasable.AddRange(batch.Release);
            // A failed fsync (data or log) cannot be retried safely: the kernel may have dropped the pages.
            // A snapshot change already applied in memory cannot be taken back either: the image must be reopened.
            if (batch.DurabilityLost || _store is { Broken: true } || batch.Changes.Image is not null)
            {
                _fatal = batch.Error;
                result = -ErrnoIo;
            }
        }
        else
        {
            foreach (var (cluster, count) in batch.Release)
            {
                // The change that freed them is durable and no I/O can reach them: give the space back to the
                // host (a hole in the file, a discard on a device), then let them be reused.
                _dataFile.PunchHole(_geometry.ClusterOffset(cluster), (long)count << _geometry.ClusterShift);
                _allocator.Release(cluster, count);
            }
            if (!batch.Changes.IsEmpty) Commits++;
            if (batch.Changes.FoldJournal) { _unfolded.Clear(); _journalEntries = 0; _journalBytes = 0; }
            if (batch.Changes.Journal is { } entry) { _journalEntries++; _journalBytes += entry.Records.Length; }
        }
        foreach (ulong id in batch.FlushIds) Respond(new RingEvent { Type = RingEventType.FlushRsp, Id = id, Result = result });
        foreach (ulong id in batch.ControlIds) Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = id, Result = result });
        if (_fatal is not null) { FailPending(); return 1; }
        if (_waitingFlushes.Count > 0 || _waitingControls.Count > 0 || (batch.Error is null && CommitDue())) StartCommit();   // flushes that arrived meanwhile, or an overdue commit
        return 1;
    }

    private void Respond(in RingEvent ev)
    {
        while (!_responses.TryProduce(ev))
        {
            _targetBell.Ring();   // full: the completion thread drains it
            Thread.Yield();
        }
    }

    // After a fatal error every request fails; the image must be reopened (and checked).
    private void FailRequest(in RingEvent ev)
    {
        if (ev.Type == RingEventType.MapBlockReq) Respond(Error(ev, -ErrnoIo));
        else if (ev.Type == RingEventType.FlushReq) Respond(new RingEvent { Type = RingEventType.FlushRsp, Id = ev.Id, Result = -ErrnoIo });
        else if (ev.Type == RingEventType.ControlReq) Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = ev.Id, Result = -ErrnoIo });
    }

    private void FailPending()
    {
        foreach (var ev in _deferred) FailRequest(ev);
        _deferred.Clear();
        foreach (ulong id in _waitingFlushes) Respond(new RingEvent { Type = RingEventType.FlushRsp, Id = id, Result = -ErrnoIo });
        _waitingFlushes.Clear();
        foreach (ulong id in _waitingControls) Respond(new RingEvent { Type = RingEventType.ControlRsp, Id = id, Result = -ErrnoIo });
        _waitingControls.Clear();
    }

    private static RingEvent Response(in RingEvent req) =>
        new() { Type = RingEventType.MapBlockRsp, Id = req.Id, Block = req.Block };

    private static RingEvent Error(in RingEvent req, int errno) =>
        new() { Type = RingEventType.MapBlockRsp, Id = req.Id, Block = req.Block, Count = req.Count, Result = errno, ResponseFlags = MapResponseFlags.Error };

    public Exception? Fatal => _fatal;

    /// <summary>
    /// For the clean close, once this responder has stopped: the chunks the journal changed, written whole, and
    /// the journal emptied, so a closed image opens from its chunks alone. Empty when there is no journal.
    /// </summary>
    internal MetadataChanges FinalFold()
    {
        var changes = new MetadataChanges();
        if (_journalEntries == 0 && _dirtyChunks.Count == 0) return changes;
        _unfolded.UnionWith(_dirtyChunks);
        foreach (long c in _unfolded) changes.Chunks.Add((c, ExtentCodec.Encode(_table, c)));
        changes.FoldJournal = true;
        return changes;
    }

    /// <summary>
    /// Checks the allocation invariants: no cluster mapped twice, every mapping inside the data file, and
    /// used + free covering the data file exactly. Call only while no I/O is in flight (after a flush).
    /// </summary>
    public InvariantReport CheckInvariants(long dataFileLength)
    {
        if (_allocating.Count > 0) throw new InvalidOperationException("allocations in flight; flush first");
        var seen = new HashSet<long>();
        long fileClusters = _geometry.ClustersIn(dataFileLength);
        var owners = new Dictionary<long, DeadKey>();
        foreach (var (b, cluster) in _table.DataMappings())
            owners[cluster] = new DeadKey(b, _table.GetMapping(b).Epoch);
        var mapped = _table.DataMappings().ToList();
        foreach (var (key, cluster) in _history.DeadClusters())
        {
            if (owners.TryGetValue(cluster, out var owner) && owner == key) continue;   // the head reads it again (a revert)
            mapped.Add((key.Block, cluster));
        }
        foreach (var (b, cluster) in mapped)
        {
            if (!seen.Add(cluster)) throw new CorruptImageException($"physical cluster {cluster} mapped twice");
            if (cluster < ClusterGeometry.FirstDataCluster || cluster >= fileClusters)
                throw new CorruptImageException($"block {b} maps to cluster {cluster}, outside the data file ({fileClusters} clusters)");
            if (!_allocator.IsUsed(cluster)) throw new CorruptImageException($"mapped cluster {cluster} is marked free");
        }
        var freeing = new HashSet<long>();
        foreach (var (cluster, count) in _pendingFree.Concat(_releasable))
            for (long c = cluster; c < cluster + count; c++)
            {
                if (seen.Contains(c)) throw new CorruptImageException($"cluster {c} is both mapped and being freed");
                if (!freeing.Add(c)) throw new CorruptImageException($"cluster {c} is being freed twice");
            }
        // Every cluster of the data file is exactly one of: mapped, being freed, free.
        long free = 0;
        for (long c = ClusterGeometry.FirstDataCluster; c < fileClusters; c++)
        {
            bool used = _allocator.IsUsed(c);
            bool held = seen.Contains(c) || freeing.Contains(c);
            if (used != held)
                throw new CorruptImageException(used ? $"cluster {c} is allocated but neither mapped nor being freed (a leak)"
                                                     : $"cluster {c} is mapped or being freed but marked free");
            if (!used) free++;
        }
        for (long c = Math.Max(fileClusters, ClusterGeometry.FirstDataCluster); c < _allocator.HighWater; c++)
            if (_allocator.IsUsed(c)) throw new CorruptImageException($"cluster {c} is allocated past the end of the data file");
        long pendingFree = freeing.Count;
        long covered = Math.Max(0, fileClusters - ClusterGeometry.FirstDataCluster);
        if (seen.Count + pendingFree + free != covered)
            throw new CorruptImageException($"mapped {seen.Count} + freeing {pendingFree} + free {free} != {covered} data clusters");
        return new InvariantReport(seen.Count, pendingFree, free, covered);
    }

    /// <summary>Waits for the responder's thread to end on its own (it died); false if it still runs after the timeout.</summary>
    internal bool WaitForExit(TimeSpan timeout) => _thread.Join(timeout);

    public void Dispose()
    {
        _stopping = true;
        _bell.Ring();
        _thread.Join();
        _committer?.Dispose();
    }
}

/// <summary>Cluster accounting of the data file at a quiescent point.</summary>
public readonly record struct InvariantReport(long MappedClusters, long PendingFreeClusters, long FreeClusters, long DataFileClusters);
