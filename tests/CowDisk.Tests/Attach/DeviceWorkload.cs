namespace CowDisk.Tests.Attach;

/// <summary>
/// Random I/O on a device from several threads until each fails (or Stop): writes of 4 KiB..256 KiB whose
/// sectors carry (sector, generation) patterns, fdatasync, BLKDISCARD and fallocate punch and zero range, recorded in a
/// <see cref="SectorModel"/>. A failing call ends its thread; the errno is kept.
/// </summary>
public sealed class DeviceWorkload
{
    private const int MaxSectorsPerWrite = 64; // 256 KiB
    private const int MaxSectorsPerDiscard = 256; // 1 MiB

    private readonly DirectBlockDevice _device;
    private readonly SectorModel _model;
    private readonly Thread[] _threads;
    private readonly int[] _errors;
    private volatile bool _stop;
    private int _inFlight, _fsyncsInFlight, _running;
    private long _writes, _bytesWritten, _fsyncs, _discards, _punches, _zeroRanges;
    private static long s_generation;

    public DeviceWorkload(DirectBlockDevice device, SectorModel model, int threads, int seed)
    {
        _device = device;
        _model = model;
        _threads = new Thread[threads];
        _errors = new int[threads];
        for (int t = 0; t < threads; t++)
        {
            int index = t, threadSeed = HashCode.Combine(seed, t);
            _threads[t] = new Thread(() => Run(index, threadSeed)) { IsBackground = true, Name = $"workload-{t}" };
        }
    }

    public int Threads => _threads.Length;
    public int InFlight => Volatile.Read(ref _inFlight);
    public int FsyncsInFlight => Volatile.Read(ref _fsyncsInFlight);
    public int Running => Volatile.Read(ref _running);
    public long Writes => Interlocked.Read(ref _writes);
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);
    public long Fsyncs => Interlocked.Read(ref _fsyncs);
    public long Discards => Interlocked.Read(ref _discards);
    public long Punches => Interlocked.Read(ref _punches);
    public long ZeroRanges => Interlocked.Read(ref _zeroRanges);

    /// <summary>The errno each thread ended with (0: stopped, or still running).</summary>
    public IReadOnlyList<int> Errors => _errors;

    public void Start()
    {
        _running = _threads.Length;
        foreach (var thread in _threads) thread.Start();
    }

    public void Stop() => _stop = true;

    /// <summary>True when every thread has ended within the timeout.</summary>
    public bool Join(TimeSpan timeout)
    {
        long deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        foreach (var thread in _threads)
        {
            int left = (int)Math.Max(0, deadline - Environment.TickCount64);
            if (!thread.Join(left)) return false;
        }
        return true;
    }

    private void Run(int index, int seed)
    {
        var random = new Random(seed);
        // A thread that hangs in a syscall keeps its buffer: it is freed only by a thread that returned.
        var buffer = new AlignedBuffer(MaxSectorsPerWrite * SectorPattern.Size);
        try
        {
            while (!_stop)
            {
                int roll = random.Next(1000);
                int result = roll switch
                {
                    < 30 => Fsync(),
                    < 50 => Discard(random, Kind.Discard),
                    < 70 => Discard(random, Kind.Punch),
                    < 85 => Discard(random, Kind.ZeroRange),
                    _ => Write(random, buffer),
                };
                if (result < 0) { _errors[index] = -result; break; }
            }
            buffer.Dispose();
        }
        finally { Interlocked.Decrement(ref _running); }
    }

    private int Write(Random random, AlignedBuffer buffer)
    {
        int count = random.Next(4) switch
        {
            0 or 1 => random.Next(1, 5),
            2 => random.Next(5, 17),
            _ => random.Next(17, MaxSectorsPerWrite + 1),
        };
        long generation = Interlocked.Increment(ref s_generation);
        if (Claim(random, count, generation) is not (long first, int id)) return 0;
        for (int i = 0; i < count; i++)
            SectorPattern.Fill(buffer.Span.Slice(i * SectorPattern.Size, SectorPattern.Size), first + i, generation);
        Interlocked.Increment(ref _inFlight);
        int result = _device.Write(first * SectorPattern.Size, buffer, count * SectorPattern.Size);
        Interlocked.Decrement(ref _inFlight);
        if (result < 0) { _model.Fail(first, count); return result; }
        _model.Complete(id, first, count);
        Interlocked.Increment(ref _writes);
        Interlocked.Add(ref _bytesWritten, count * SectorPattern.Size);
        return 0;
    }

    private enum Kind { Discard, Punch, ZeroRange }

    /// <summary>BLKDISCARD, a punched hole or a zeroed range: all read as zeros afterwards (generation 0).</summary>
    private int Discard(Random random, Kind kind)
    {
        int count = random.Next(2) == 0 ? random.Next(1, 17) : random.Next(16, MaxSectorsPerDiscard + 1);
        if (Claim(random, count, generation: 0) is not (long first, int id)) return 0;
        Interlocked.Increment(ref _inFlight);
        long offset = first * SectorPattern.Size, length = (long)count * SectorPattern.Size;
        int result = kind switch
        {
            Kind.Discard => _device.Discard(offset, length),
            Kind.Punch => _device.PunchHole(offset, length),
            _ => _device.ZeroRange(offset, length),
        };
        Interlocked.Decrement(ref _inFlight);
        if (result < 0) { _model.Fail(first, count); return result; }
        _model.Complete(id, first, count);
        if (kind == Kind.Discard) Interlocked.Increment(ref _discards);
        else if (kind == Kind.Punch) Interlocked.Increment(ref _punches);
        else Interlocked.Increment(ref _zeroRanges);
        return 0;
    }

    private int Fsync()
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _fsyncsInFlight);
        long startedAt = _model.FsyncStarting();
        int result = _device.DataSync();
        Interlocked.Decrement(ref _fsyncsInFlight);
        Interlocked.Decrement(ref _inFlight);
        if (result < 0) return result;
        _model.FsyncCompleted(startedAt);
        Interlocked.Increment(ref _fsyncs);
        return 0;
    }

    /// <summary>A free range of count sectors at a random place, claimed in the model; null after a few tries.</summary>
    private (long First, int Id)? Claim(Random random, int count, long generation)
    {
        for (int attempt = 0; attempt < 8; attempt++)
        {
            long first = random.NextInt64(_model.Sectors - count + 1);
            if (_model.TryBegin(first, count, generation) is int id) return (first, id);
        }
        return null;
    }
}
