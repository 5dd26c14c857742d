using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Format.Mapping;
using CowDisk.Format.Ring;

namespace CowDisk.Engine.Ring;

/// <summary>
/// The target's end of the ring pair. Several I/O threads produce into the one request ring, so producers
/// are serialised by a lock (SPSC indices do not survive concurrent producers; a ring pair per worker would
/// lose the single response order that keeps the mapping cache coherent, see docs/ARCHITECTURE.md).
/// The response ring is drained by the waiting callers themselves, leader/follower style: one caller at a
/// time holds the consumer role, drains in ring order (cache updates, INVALIDATE), hands each response to
/// its caller, and on leaving promotes a caller still waiting. No completion thread: a round trip costs two
/// thread hand-offs, not three. Call slots are preallocated: a call allocates nothing.
/// When the responder is gone (it closes the response bell as its thread ends), or the response ring carried a
/// malformed event, every call fails at once with a <see cref="BlockDeviceException"/>: the leader notices,
/// fails, and hands the role on, so each waiter in turn does the same.
/// </summary>
internal sealed class RingClient : IDisposable
{
    private sealed class CallSlot
    {
        public readonly SemaphoreSlim Wake = new(0);
        public RingEvent Response;
        public uint Generation;
        public int InUse;       // 1 while a call owns the slot
        public int Completed;   // 1 once Response holds the answer
        public int Following;   // 1 while the caller sleeps on Wake waiting for a leader
        public long Calls;      // round trips completed through this slot (written by its owner only)
    }

    private const int IdSlotBits = 16;
    /// <summary>How long a leader or follower sleeps before it looks again. A safety net only: every wake-up it
    /// waits for is signalled, so no progress depends on it (tests run with an infinite wait to prove that).</summary>
    public const int DefaultWaitMs = 50;
    private readonly SpscRing _requests;
    private readonly SpscRing _responses;
    private readonly Doorbell _responderBell;
    private readonly Doorbell _responseBell;
    private readonly MappingCache? _cache;
    private readonly object _produceLock = new();
    private readonly CallSlot[] _slots;
    // Slots for reads made while this thread holds an allocation (a copy on write that reads the block as it is
    // now before its MAP_BLOCK_DONE). They cannot share the pool: requests deferred behind that allocation keep
    // their slots until its DONE, and could hold them all. A read is never deferred, so this pool always drains.
    private const int NestedSlots = 8;
    private readonly int _firstNested;
    // A caller claims a slot by compare-and-swap on its InUse, starting at the slot it had last: with fewer callers
    // than slots each thread keeps finding its own, and no lock or shared counter is touched. All taken: wait.
    [ThreadStatic] private static int t_lastSlot, t_lastNested;   // 1 + the slot this thread claimed last (0: none yet)
    private int _nextFirstSlot;                     // where a thread's first claim starts: threads spread from 0 up
    private int _claimWaiters, _nestedClaimWaiters;   // callers waiting because every slot of their pool was taken
    private readonly SemaphoreSlim _slotFreed = new(0), _nestedSlotFreed = new(0);   // one per pool
    private readonly int _waitMs;
    private int _consumer;   // 1 while a caller holds the consumer (leader) role
    private int _followers;  // callers between announcing themselves as followers and leaving that state
    private int _slotHighWater;   // the highest slot index claimed so far: followers are found at or below it
    private volatile bool _stopping;
    private volatile string? _broken;   // why the response ring can no longer be trusted (set by a leader)

    public RingClient(SpscRing requests, SpscRing responses, Doorbell responderBell, Doorbell responseBell,
        MappingCache? cache, int maxInFlight, int waitMs = DefaultWaitMs)
    {
        _requests = requests; _responses = responses;
        _responderBell = responderBell; _responseBell = responseBell;
        _cache = cache;
        maxInFlight = Math.Clamp(maxInFlight, 1, (1 << IdSlotBits) - NestedSlots);
        _slots = new CallSlot[maxInFlight + NestedSlots];
        for (int i = 0; i < _slots.Length; i++) _slots[i] = new CallSlot();
        _firstNested = maxInFlight;
        _waitMs = waitMs;
    }

    /// <summary>Round trips through the ring so far (for benchmarks and info).</summary>
    public long Calls
    {
        get
        {
            long n = 0;
            foreach (var slot in _slots) n += Volatile.Read(ref slot.Calls);
            return n;
        }
    }

    /// <summary>Callers waiting because every slot of their pool was taken (for tests).</summary>
    internal int WaitingForSlots => Volatile.Read(ref _claimWaiters) + Volatile.Read(ref _nestedClaimWaiters);

    /// <summary>A call whose request is in the ring and whose response is not yet taken.</summary>
    public readonly record struct PendingCall(int Slot);

    /// <summary>Sends a request and waits for its response (MAP_BLOCK_REQ → RSP, FLUSH_REQ → FLUSH_RSP).</summary>
    public RingEvent Call(RingEvent request) => End(Begin(request));

    /// <summary>A read made while the caller holds an allocation (its DONE not sent yet): from the nested pool.</summary>
    public RingEvent CallNested(RingEvent request) => End(Begin(request, nested: true));

    /// <summary>Sends a request; <see cref="End"/> waits for its response.</summary>
    public PendingCall Begin(RingEvent request) => Begin(request, nested: false);

    private PendingCall Begin(RingEvent request, bool nested)
    {
        ThrowIfUnusable();
        int index = Claim(nested);
        var slot = _slots[index];
        try
        {
            if (index > Volatile.Read(ref _slotHighWater)) RaiseHighWater(index);
            while (slot.Wake.CurrentCount > 0) slot.Wake.Wait(0);   // stale wakes from an earlier call
            Volatile.Write(ref slot.Completed, 0);
            request.Id = ((ulong)slot.Generation << IdSlotBits) | (uint)index;
            Produce(request);
            return new PendingCall(index);
        }
        catch
        {
            Return(slot, index);
            throw;
        }
    }

    public RingEvent End(PendingCall call)
    {
        var slot = _slots[call.Slot];
        try
        {
            WaitFor(slot);
            Volatile.Write(ref slot.Calls, slot.Calls + 1);
            return slot.Response;
        }
        finally { Return(slot, call.Slot); }
    }

    private int Claim(bool nested)
    {
        int first = nested ? _firstNested : 0, count = nested ? NestedSlots : _firstNested;
        int start = (nested ? t_lastNested : t_lastSlot) - 1 - first;
        if ((uint)start >= (uint)count) start = (int)((uint)(Interlocked.Increment(ref _nextFirstSlot) - 1) % (uint)count);
        while (true)
        {
            for (int i = 0, at = start; i < count; i++, at = at + 1 == count ? 0 : at + 1)
            {
                var slot = _slots[first + at];
                if (Volatile.Read(ref slot.InUse) == 0 && Interlocked.CompareExchange(ref slot.InUse, 1, 0) == 0)
                {
                    if (nested) t_lastNested = first + at + 1;
                    else t_lastSlot = first + at + 1;
                    return first + at;
                }
            }
            // Every slot taken: counted before the last look, so a slot freed after it wakes us (Return).
            ref int waiters = ref nested ? ref _nestedClaimWaiters : ref _claimWaiters;
            Interlocked.Increment(ref waiters);
            try
            {
                bool free = false;
                for (int i = 0; i < count && !free; i++) free = Volatile.Read(ref _slots[first + i].InUse) == 0;
                if (!free) (nested ? _nestedSlotFreed : _slotFreed).Wait(_waitMs);
            }
            finally { Interlocked.Decrement(ref waiters); }
        }
    }

    private void Return(CallSlot slot, int index)
    {
        slot.Generation++;   // before the slot is free: its next owner's calls carry the new generation
        Interlocked.Exchange(ref slot.InUse, 0);   // full fence: the store before the load of _claimWaiters
        if (index >= _firstNested) { if (Volatile.Read(ref _nestedClaimWaiters) > 0) _nestedSlotFreed.Release(); }
        else if (Volatile.Read(ref _claimWaiters) > 0) _slotFreed.Release();
    }

    /// <summary>Sends an event that has no response (MAP_BLOCK_DONE).</summary>
    public void Post(in RingEvent ev) => Produce(ev);

    /// <summary>
    /// Runs first(state), then sends ev, with no other event entering the ring in between: whatever another
    /// thread does after seeing first's effect, any event it sends lands behind ev.
    /// </summary>
    public void Post<TState>(in RingEvent ev, TState state, Action<TState> first) => Produce(ev, state, first);

    private void Produce(in RingEvent ev) => Produce(ev, 0, static _ => { });

    private void Produce<TState>(in RingEvent ev, TState state, Action<TState> first)
    {
        ThrowIfUnusable();   // a DONE nobody will apply must fail its write, not vanish
        lock (_produceLock)
        {
            first(state);
            while (!_requests.TryProduce(ev))
            {
                ThrowIfUnusable();
                _responderBell.Ring();   // full ring: back-pressure, let the responder drain
                Thread.Yield();
            }
        }
        _responderBell.Ring();
    }

    private void WaitFor(CallSlot slot)
    {
        while (Volatile.Read(ref slot.Completed) == 0)
        {
            if (Interlocked.CompareExchange(ref _consumer, 1, 0) == 0)
            {
                try { Lead(slot); }
                finally
                {
                    // A full fence, not a release store: we store _consumer then load Following (PromoteFollower),
                    // a follower stores Following then loads _consumer. A plain store may be passed by our loads
                    // (store-load reordering): the follower still sees a leader, we see no follower, and it sleeps
                    // for the whole wait. Fenced on both sides, at least one of us sees the other (Dekker).
                    Interlocked.Exchange(ref _consumer, 0);
                    PromoteFollower();
                }
                return;
            }
            // Follower: sleep until the leader completes this call or hands over the consumer role. Counted first:
            // a leader stepping down that sees no follower skips its search, and then we see no leader.
            Interlocked.Increment(ref _followers);
            Interlocked.Exchange(ref slot.Following, 1);   // full fence: pairs with the leader's Completed write and step-down
            if (Volatile.Read(ref slot.Completed) == 0 && Volatile.Read(ref _consumer) == 1) slot.Wake.Wait(_waitMs);
            Interlocked.Exchange(ref slot.Following, 0);
            Interlocked.Decrement(ref _followers);
        }
    }

    /// <summary>As the one consumer: drain responses in ring order until this call's answer is in.</summary>
    private void Lead(CallSlot own)
    {
        while (Volatile.Read(ref own.Completed) == 0)
        {
            if (Drain() || Volatile.Read(ref own.Completed) != 0) continue;
            if (_stopping) throw new ObjectDisposedException(nameof(RingClient));
            if (Failure is { } failure)
            {
                // The responder's last answers may have landed between our drain and its hang-up.
                Drain();
                if (Volatile.Read(ref own.Completed) != 0) return;
                throw new BlockDeviceException(failure);
            }
            _responseBell.Wait(_waitMs);
        }
    }

    private bool Drain()
    {
        bool any = false;
        while (_responses.TryConsume(out var ev, out bool malformed))
        {
            any = true;
            if (malformed) Break(ev);
            else Dispatch(ev);
        }
        return any;
    }

    // A response slot of an unknown type: whatever it was (an answer, an INVALIDATE) is lost, so neither the
    // cache nor the calls still waiting can be trusted any more. The ring is broken; calls fail from now on.
    private void Break(in RingEvent ev)
    {
        _broken ??= $"malformed ring response (type {(ushort)ev.Type}, id {ev.Id}); reopen the image";
        _cache?.Clear();
    }

    /// <summary>Why no call can succeed any more, or null.</summary>
    private string? Failure => _responseBell.IsClosed ? "the image's responder has stopped; reopen the image" : _broken;

    private void ThrowIfUnusable()
    {
        if (_stopping) throw new ObjectDisposedException(nameof(RingClient));
        if (Failure is { } failure) throw new BlockDeviceException(failure);
    }

    // Leaving the consumer role with calls still waiting: wake one of them to take it.
    private void PromoteFollower()
    {
        if (Volatile.Read(ref _followers) == 0) return;   // the common case: no search through every slot
        int last = Volatile.Read(ref _slotHighWater);
        for (int i = 0; i <= last; i++)
        {
            var slot = _slots[i];
            if (Volatile.Read(ref slot.InUse) == 1 && Volatile.Read(ref slot.Completed) == 0 && Volatile.Read(ref slot.Following) == 1)
            {
                slot.Wake.Release();
                return;
            }
        }
    }

    private void RaiseHighWater(int index)
    {
        int seen;
        while ((seen = Volatile.Read(ref _slotHighWater)) < index && Interlocked.CompareExchange(ref _slotHighWater, index, seen) != seen) { }
    }

    private void Dispatch(in RingEvent ev)
    {
        switch (ev.Type)
        {
            case RingEventType.Invalidate:
                if (((InvalidateFlags)ev.Flags & InvalidateFlags.All) != 0) _cache?.Clear();
                else _cache?.Invalidate(ev.Block, ev.Count);
                return;
            case RingEventType.MapBlockRsp:
                if (_cache is not null && _broken is null) CacheResponse(ev);
                break;
        }
        int index = (int)(ev.Id & ((1UL << IdSlotBits) - 1));
        if ((uint)index >= (uint)_slots.Length) return;
        var slot = _slots[index];
        // Only to the call that sent this id and still waits: an answer may carry another call's id (the
        // responder answers a malformed slot with whatever id it held, perhaps a finished call's, as in a DONE).
        if (ev.Id >> IdSlotBits != Volatile.Read(ref slot.Generation) || Volatile.Read(ref slot.InUse) == 0 ||
            Volatile.Read(ref slot.Completed) != 0) return;
        slot.Response = ev;
        Interlocked.Exchange(ref slot.Completed, 1);          // full fence: pairs with the follower's Following write
        if (Volatile.Read(ref slot.Following) == 1) slot.Wake.Release();
    }

    private void CacheResponse(in RingEvent rsp)
    {
        var flags = rsp.ResponseFlags;
        // A new extent (SYNC) is not true until its data is written; the writer stores it then.
        // A layered block reads from two clusters: one cache entry cannot say which.
        if ((flags & (MapResponseFlags.Error | MapResponseFlags.Sync | MapResponseFlags.CopyFirst | MapResponseFlags.Layered)) != 0) return;
        bool shared = (flags & MapResponseFlags.Shared) != 0;
        if ((flags & MapResponseFlags.Zero) != 0 || rsp.Device == DeviceIndex.Base)
        {
            // One value for the whole run: long runs cost no memory per block.
            _cache!.InsertRunIfAbsent(rsp.Block, rsp.Count,
                MappingCache.Encode((flags & MapResponseFlags.Zero) != 0 ? MappingSource.Zero : MappingSource.Backing));
            return;
        }
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
        _responseBell.Ring();
    }
}
