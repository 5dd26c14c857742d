using System.Diagnostics;

namespace CowDisk.Engine.Native;

/// <summary>
/// While requests keep coming, asks the kernel to let idle CPUs poll instead of halting: a CPU latency request of
/// 0 µs through PM QoS (<c>/dev/cpu_dma_latency</c>, held open; the kernel drops the request when the descriptor
/// closes, so a killed daemon leaves nothing behind). In a VM, waking a halted vCPU costs tens of microseconds (here
/// the guest's haltpoll driver polls for 0 ns), and a QD1 request wakes a CPU several times: the client, the loop
/// worker, the serving thread. A /dev/fuse server saves some of that with its polling worker; the io_uring queue
/// threads cannot poll without taking the CPU from the client beside them, and a spinning helper thread at low
/// priority got in the way of kernel threads woken on its CPU (an fsync's journal commit). The idle loop does not:
/// it runs only when nothing else would. The request is made when a request comes within the window of the one
/// before (a lone request, such as a file system's occasional write, asks for nothing), and lifted once none came
/// for the window, checked every millisecond by a thread that sleeps while the disk is idle.
/// </summary>
internal sealed unsafe class CpuIdlePolling : IDisposable
{
    private const string DevicePath = "/dev/cpu_dma_latency";
    /// <summary>PM QoS's default CPU latency: a request of this asks for nothing.</summary>
    public const int NoLimit = 2_000_000_000;

    private readonly int _fd;
    private readonly long _windowTicks;
    private readonly Thread _thread;
    private readonly SemaphoreSlim _wake = new(0);
    private long _lastTouch;
    private int _sleeping = 1;     // 1: the thread waits for a touch (and the CPUs may halt)
    private volatile bool _stopping;
    private int _disposed;

    private CpuIdlePolling(int fd, int microseconds, string name)
    {
        _fd = fd;
        _windowTicks = microseconds * Stopwatch.Frequency / 1_000_000;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Null, with why, where the request cannot be made (no PM QoS device, not root).</summary>
    public static CpuIdlePolling? TryStart(int microseconds, string threadName, out string? why)
    {
        if (microseconds <= 0) throw new ArgumentOutOfRangeException(nameof(microseconds));
        int fd = PosixFile.TryOpen(DevicePath, PosixFile.O_WRONLY);
        why = fd < 0 ? $"cannot open {DevicePath}: {Errno.Describe(-fd)}" : Request(fd, NoLimit);
        if (why is null) return new CpuIdlePolling(fd, microseconds, threadName);
        if (fd >= 0) PosixFile.Close(fd);
        return null;
    }

    /// <summary>A request arrived at <paramref name="now"/> (Stopwatch ticks). Allocates nothing; a syscall only to wake the thread.</summary>
    public void Touch(long now)
    {
        long last = Volatile.Read(ref _lastTouch);
        // Written only when it moves by an eighth of the window: several queue threads touch, one cache line.
        if (now - last > _windowTicks / 8) Interlocked.Exchange(ref _lastTouch, now);   // full fence: then the read of _sleeping
        // Only a request within the window of the one before starts the polling.
        if (now - last < _windowTicks && Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _sleeping, 0) == 1) _wake.Release();
    }

    private bool Recent() => Stopwatch.GetTimestamp() - Volatile.Read(ref _lastTouch) < _windowTicks;

    /// <summary>Asks for a CPU latency of at most this many µs (the device takes a native s32).</summary>
    private static string? Request(int fd, int microseconds)
    {
        nint n = PosixFile.Write(fd, (byte*)&microseconds, sizeof(int));
        return n == sizeof(int) ? null : $"cannot write {DevicePath}: {(n < 0 ? Errno.Describe((int)-n) : "short write")}";
    }

    private void Run()
    {
        while (true)
        {
            _wake.Wait();
            if (_stopping) return;
            Request(_fd, 0);   // from here idle CPUs poll
            while (!_stopping)
            {
                Thread.Sleep(1);
                if (Recent()) continue;
                Interlocked.Exchange(ref _sleeping, 1);   // full fence: then the last look at _lastTouch (Dekker with Touch)
                if (!Recent()) break;
                // A touch came between the last look and the flag: keep polling. If it saw the flag and cleared it,
                // it also released the semaphore: take that permit now.
                if (Interlocked.Exchange(ref _sleeping, 0) == 0) _wake.Wait();
            }
            Request(_fd, NoLimit);   // idle CPUs may halt again
        }
    }

    /// <summary>Stops the thread and drops the request; false if the thread did not stop (the request then stays until the process exits).</summary>
    public bool Stop()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return true;
        _stopping = true;
        _wake.Release();
        // Closing the descriptor drops the request; only once the thread cannot write to it any more.
        if (!_thread.Join(TimeSpan.FromSeconds(5))) return false;
        PosixFile.Close(_fd);
        return true;
    }

    public void Dispose() => Stop();
}
