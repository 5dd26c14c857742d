using System.Runtime.InteropServices;

namespace CowDisk.Engine.Target;

/// <summary>
/// What the target's I/O holds while it runs, and what a flush or a snapshot operation closes for a moment to know
/// that no I/O is in flight (a "big reader" lock). I/O costs one interlocked add on a counter of its own stripe,
/// so I/O threads do not contend on one cache line as they did on a ReaderWriterLockSlim; closing sums the stripes.
/// Not reentrant: an I/O that entered must not enter again (a waiting close would deadlock it).
/// </summary>
internal sealed class DrainGate
{
    [StructLayout(LayoutKind.Explicit, Size = 128)]   // two cache lines: no false sharing with a neighbour's prefetch
    private struct Stripe
    {
        [FieldOffset(64)] public long InFlight;
    }

    private readonly Stripe[] _stripes;
    private readonly int _mask;
    private volatile int _closed;                       // 1 while a closer holds the gate
    private readonly object _closers = new();           // one closer at a time
    private readonly object _opened = new();            // entrants that met a closed gate wait here
    private readonly SemaphoreSlim _exited = new(0);    // I/O that leaves while the gate is closed wakes the closer

    public DrainGate()
    {
        int n = 8;
        while (n < Environment.ProcessorCount * 4) n <<= 1;
        _stripes = new Stripe[n];
        _mask = n - 1;
    }

    /// <summary>A closer has closed the gate: I/O that enters from now on waits until it opens.</summary>
    public bool IsClosed => _closed != 0;

    /// <summary>Enters for one I/O; pass the result to <see cref="Exit"/>.</summary>
    public int Enter()
    {
        int s = Environment.CurrentManagedThreadId & _mask;
        while (true)
        {
            // The add is a full fence: a closer that set _closed before it sees this count, or we see _closed.
            Interlocked.Increment(ref _stripes[s].InFlight);
            if (_closed == 0) return s;
            Interlocked.Decrement(ref _stripes[s].InFlight);
            lock (_opened)
                while (_closed != 0) Monitor.Wait(_opened);
        }
    }

    public void Exit(int stripe)
    {
        Interlocked.Decrement(ref _stripes[stripe].InFlight);
        if (_closed != 0) _exited.Release();   // only while a closer waits: the common path is the add alone
    }

    /// <summary>Stops new I/O from entering and waits until none is in flight. Pair with <see cref="Open"/>.</summary>
    public void Close()
    {
        Monitor.Enter(_closers);
        _closed = 1;
        Interlocked.MemoryBarrier();   // the store above before the loads below (pairs with Enter's add)
        while (_exited.CurrentCount > 0) _exited.Wait(0);   // wakes meant for an earlier close
        for (int spins = 0; InFlight() != 0; spins++)
        {
            if (spins < 20) Thread.SpinWait(20);
            else _exited.Wait(1);   // woken by the next I/O to leave; 1 ms is a safety net only
        }
    }

    public void Open()
    {
        lock (_opened)
        {
            _closed = 0;
            Monitor.PulseAll(_opened);
        }
        Monitor.Exit(_closers);
    }

    private long InFlight()
    {
        long n = 0;
        for (int i = 0; i < _stripes.Length; i++) n += Volatile.Read(ref _stripes[i].InFlight);
        return n;
    }
}
