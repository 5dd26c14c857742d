namespace CowDisk.Engine.Ring;

/// <summary>
/// Wakes one consumer thread; rings coalesce, so a producer rings once per batch (the seed's write(fd, 1)).
/// The consumer clears the bell before it drains, so an event produced after the drain always rings again.
/// A ringer that goes away for good closes the bell: the waiter wakes and learns it (a hang-up, not an event).
/// </summary>
internal sealed class Doorbell : IDisposable
{
    // A short spin (~6 µs), then yields: on two cores a long spin starves the very thread being waited for. The bell
    // is looked at after every pause unit, not every ten: a coarse spin added ~0.2 µs per wait to each round trip.
    private const int SpinIterations = 160, YieldIterations = 32;
    private readonly SemaphoreSlim _semaphore = new(0);
    private int _rung;
    private int _sleeping;
    private int _closed;

    /// <summary>The ringer has gone for good; a waiter that sees this must not wait for it again.</summary>
    public bool IsClosed => Volatile.Read(ref _closed) != 0;

    public void Ring()
    {
        if (Interlocked.Exchange(ref _rung, 1) == 0 && Volatile.Read(ref _sleeping) != 0)
            _semaphore.Release();
    }

    /// <summary>The ringer's last word: wakes the waiter, and every later <see cref="Wait"/> returns at once.</summary>
    public void Close()
    {
        Interlocked.Exchange(ref _closed, 1);   // before the ring: the woken waiter must see it
        Ring();
    }

    /// <summary>Waits until rung or the timeout passes; clears the bell either way. A spurious wake is possible.</summary>
    public void Wait(int timeoutMs)
    {
        if (IsClosed) return;
        for (int i = 0; i < SpinIterations && Volatile.Read(ref _rung) == 0; i++) Thread.SpinWait(1);
        for (int i = 0; i < YieldIterations && Volatile.Read(ref _rung) == 0; i++) Thread.Yield();
        if (Volatile.Read(ref _rung) == 0)
        {
            Interlocked.Increment(ref _sleeping);
            if (Volatile.Read(ref _rung) == 0) _semaphore.Wait(timeoutMs);
            Interlocked.Decrement(ref _sleeping);
        }
        Interlocked.Exchange(ref _rung, 0);
    }

    public void Dispose() => _semaphore.Dispose();
}
