using CowDisk.Format.Ring;

namespace CowDisk.Engine.Ring;

/// <summary>
/// One single-producer/single-consumer ring of 64-byte slots, as in the dm-userspace seed: each side keeps
/// its own index; a slot's status word is the only synchronisation. The producer fills a slot and sets
/// status last (release); the consumer reads status first (acquire), copies the event out and clears status.
/// A full ring refuses (back-pressure); it never overwrites.
/// </summary>
internal sealed unsafe class SpscRing
{
    private readonly byte* _slots;
    private readonly int _mask;
    private int _producerIndex;   // touched only by the producer
    private int _consumerIndex;   // touched only by the consumer

    public SpscRing(byte* slots, int slotCount)
    {
        _slots = slots;
        _mask = slotCount - 1;
    }

    public int SlotCount => _mask + 1;

    public bool TryProduce(in RingEvent ev)
    {
        byte* slot = _slots + RingLayout.SlotOffset(_producerIndex);
        if (Volatile.Read(ref *(int*)slot) != 0) return false;   // full: the consumer has not cleared it yet
        ev.Write(new Span<byte>(slot, RingEvent.Size));
        Volatile.Write(ref *(int*)slot, 1);                      // publish: payload before status
        _producerIndex = (_producerIndex + 1) & _mask;
        return true;
    }

    /// <summary>
    /// Produces all of <paramref name="events"/> or none, visible to the consumer at once: the later slots are
    /// published before the first, and the consumer takes slots in order, so it sees none until it sees all.
    /// </summary>
    public bool TryProduceAll(ReadOnlySpan<RingEvent> events)
    {
        if (events.Length > SlotCount) return false;
        for (int i = 0; i < events.Length; i++)
            if (Volatile.Read(ref *(int*)(_slots + RingLayout.SlotOffset((_producerIndex + i) & _mask))) != 0) return false;
        for (int i = events.Length - 1; i >= 0; i--)
        {
            byte* slot = _slots + RingLayout.SlotOffset((_producerIndex + i) & _mask);
            events[i].Write(new Span<byte>(slot, RingEvent.Size));
            Volatile.Write(ref *(int*)slot, 1);                  // publish: payload before status; the first slot last
        }
        _producerIndex = (_producerIndex + events.Length) & _mask;
        return true;
    }

    /// <summary>
    /// Takes the next event, if any. A slot of an unknown type is taken all the same (cleared, the index moves
    /// on) and reported as <paramref name="malformed"/>, its fields as read: one bad slot must not wedge the
    /// ring, and its id lets the consumer answer it.
    /// </summary>
    public bool TryConsume(out RingEvent ev, out bool malformed)
    {
        byte* slot = _slots + RingLayout.SlotOffset(_consumerIndex);
        if (Volatile.Read(ref *(int*)slot) == 0) { ev = default; malformed = false; return false; }  // acquire: status before payload
        malformed = !RingEvent.TryRead(new ReadOnlySpan<byte>(slot, RingEvent.Size), out ev);
        Volatile.Write(ref *(int*)slot, 0);                      // hand the slot back after the copy
        _consumerIndex = (_consumerIndex + 1) & _mask;
        return true;
    }
}
