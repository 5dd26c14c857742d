using CowDisk.Engine.Mapping;
using CowDisk.Format.Mapping;
using CowDisk.Format.Ring;

namespace CowDisk.Engine.Ring;

/// <summary>
/// The target's end of the ring pair. Several I/O threads produce into the one request ring, so producers
/// are serialised by a lock (SPSC indices do not survive concurrent producers; one ring pair per worker
/// would need one responder loop per pair for no gain here, since the responder is single-threaded anyway).
/// One completion thread drains the response ring in order, keeps the mapping cache coherent and wakes the
/// thread waiting on each call. Call slots are preallocated: a call allocates nothing.
/// </summary>
internal sealed class RingClient : IDisposable
{
    private sealed class CallSlot
    {
        public readonly SemaphoreSlim Done = new(0);
        public RingEvent Response;
        public uint Generation;
    }

    private const int IdSlotBits = 16;
    private readonly SpscRing _requests;
    private readonly SpscRing _responses;
    private readonly Doorbell _responderBell;
    private readonly Doorbell _completionBell;
    private readonly MappingCache? _cache;
    private readonly object _produceLock = new();
    private readonly CallSlot[] _slots;
    private readonly Stack<int> _freeSlots;
    private readonly SemaphoreSlim _slotsAvailable;
    private readonly Thread _completionThread;
    private volatile bool _stopping;
    private long _calls;

    public RingClient(SpscRing requests, SpscRing responses, Doorbell responderBell, Doorbell completionBell,
        MappingCache? cache, int maxInFlight)
    {
        _requests = requests; _responses = responses;
        _responderBell = responderBell; _completionBell = completionBell;
        _cache = cache;
        maxInFlight = Math.Clamp(maxInFlight, 1, 1 << IdSlotBits);
        _slots = new CallSlot[maxInFlight];
        _freeSlots = new Stack<int>(maxInFlight);
        for (int i = maxInFlight - 1; i >= 0; i--) { _slots[i] = new CallSlot(); _freeSlots.Push(i); }
        _slotsAvailable = new SemaphoreSlim(maxInFlight);
        _completionThread = new Thread(CompletionLoop) { IsBackground = true, Name = "cowdisk-ring-completion" };
        _completionThread.Start();
    }

    /// <summary>Round trips through the ring so far (for benchmarks and info).</summary>
    public long Calls => Interlocked.Read(ref _calls);

    /// <summary>Sends a request and waits for its response (MAP_BLOCK_REQ → RSP, FLUSH_REQ → FLUSH_RSP).</summary>
    public RingEvent Call(RingEvent request)
    {
        _slotsAvailable.Wait();
        int index;
        lock (_freeSlots) index = _freeSlots.Pop();
        var slot = _slots[index];
        try
        {
            request.Id = ((ulong)slot.Generation << IdSlotBits) | (uint)index;
            Produce(request);
            slot.Done.Wait();
            Interlocked.Increment(ref _calls);
            return slot.Response;
        }
        finally
        {
            slot.Generation++;
            lock (_freeSlots) _freeSlots.Push(index);
            _slotsAvailable.Release();
        }
    }

    /// <summary>Sends an event that has no response (MAP_BLOCK_DONE).</summary>
    public void Post(in RingEvent ev) => Produce(ev);

    private void Produce(in RingEvent ev)
    {
        lock (_produceLock)
        {
            while (!_requests.TryProduce(ev))
            {
                if (_stopping) throw new ObjectDisposedException(nameof(RingClient));
                _responderBell.Ring();   // full ring: back-pressure, let the responder drain
                Thread.Yield();
            }
        }
        _responderBell.Ring();
    }

    private void CompletionLoop()
    {
        while (!_stopping)
        {
            bool any = false;
            while (_responses.TryConsume(out var ev))
            {
                any = true;
                Complete(ev);
            }
            if (!any) _completionBell.Wait(100);
        }
    }

    private void Complete(in RingEvent ev)
    {
        switch (ev.Type)
        {
            case RingEventType.Invalidate:
                _cache?.Invalidate(ev.Block, ev.Count);
                return;
            case RingEventType.MapBlockRsp:
                if (_cache is not null) CacheResponse(ev);
                break;
        }
        int index = (int)(ev.Id & ((1UL << IdSlotBits) - 1));
        if ((uint)index >= (uint)_slots.Length) return;
        var slot = _slots[index];
        slot.Response = ev;
        slot.Done.Release();
    }

    private void CacheResponse(in RingEvent rsp)
    {
        var flags = rsp.ResponseFlags;
        // A new extent (SYNC) is not true until its data is written; the writer stores it then.
        if ((flags & (MapResponseFlags.Error | MapResponseFlags.Sync | MapResponseFlags.CopyFirst)) != 0) return;
        bool shared = (flags & MapResponseFlags.Shared) != 0;
        for (int i = 0; i < rsp.Count; i++)
        {
            ulong raw = (flags & MapResponseFlags.Zero) != 0 ? MappingCache.Encode(MappingSource.Zero)
                : rsp.Device == DeviceIndex.Base ? MappingCache.Encode(MappingSource.Backing)
                : MappingCache.Encode(MappingSource.Data, rsp.DeviceBlock + i, shared);
            _cache!.InsertIfAbsent(rsp.Block + i, raw);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _completionBell.Ring();
        _completionThread.Join();
    }
}

/// <summary>Device indices in MAP_BLOCK_RSP.</summary>
internal static class DeviceIndex
{
    public const ushort Data = 0;
    public const ushort Base = 1;
}
