using System.Diagnostics;

namespace CowDisk.Engine.Native;

/// <summary>
/// Keeps a CPU from going idle for a short window after each request, so that the next one does not first wake an
/// idle CPU. In a VM that wake-up is a halted vCPU's (tens of microseconds here, where the guest does not halt-poll):
/// 4 KiB reads at QD1 over FUSE-over-io_uring spent 60-115 us in their slowest 10 % against 20-25 us in the rest.
/// A /dev/fuse server gets this from its polling worker; the io_uring queue threads cannot poll themselves without
/// taking the CPU from the client that shares it (see FuseUringQueue). So one thread at the lowest priority
/// (nice 19) spins instead: any other thread that wakes on its CPU runs at once. It spins on the clock alone, no
/// pause instruction (a hypervisor may take a vCPU that loops on pause away), and sleeps once the window passes
/// without a request.
/// </summary>
internal sealed class CpuKeeper : IDisposable
{
    private readonly long _windowTicks;
    private readonly Thread _thread;
    private readonly SemaphoreSlim _wake = new(0);
    private long _lastTouch;
    private int _sleeping = 1;     // 1: waiting for a touch
    private volatile bool _stopping;

    /// <param name="microseconds">How long the CPU is kept after the last touch.</param>
    public CpuKeeper(int microseconds, string name)
    {
        if (microseconds <= 0) throw new ArgumentOutOfRangeException(nameof(microseconds));
        _windowTicks = microseconds * Stopwatch.Frequency / 1_000_000;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>A request arrived at <paramref name="now"/> (Stopwatch ticks): keep a CPU for the window from then.</summary>
    public void Touch(long now)
    {
        // Written only when it moves by an eighth of the window: several queue threads touch, one cache line.
        if (now - Volatile.Read(ref _lastTouch) > _windowTicks / 8) Interlocked.Exchange(ref _lastTouch, now);   // full fence: then the read of _sleeping
        if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1) _wake.Release();
    }

    private bool Recent() => Stopwatch.GetTimestamp() - Volatile.Read(ref _lastTouch) < _windowTicks;

    private void Run()
    {
        ProcessControl.LowerThreadPriority();
        while (true)
        {
            _wake.Wait();
            while (!_stopping)
            {
                while (!_stopping && Recent()) { }
                Interlocked.Exchange(ref _sleeping, 1);   // full fence: then the last look at _lastTouch (Dekker with Touch)
                // A touch that came between the spin's last look and the flag saw it clear: it did not wake us.
                if (!Recent() || Interlocked.Exchange(ref _sleeping, 0) == 0) break;
            }
            if (_stopping) return;
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release();
        if (_thread.Join(TimeSpan.FromSeconds(5))) _wake.Dispose();
    }
}
