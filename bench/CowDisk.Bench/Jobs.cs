using CowDisk.Engine.Images;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Bench;

/// <summary>Per-thread offset lists and buffers, prepared before the clock starts.</summary>
internal abstract class OffsetJob : Job
{
    private readonly long[][] _offsets;
    private readonly bool _wrap;
    protected readonly byte[][] Buffers;
    protected readonly int Length;

    /// <param name="wrap">Cycle through the offsets until the time limit (lists must be a power of two long).</param>
    protected OffsetJob(long[][] offsets, int length, bool wrap)
    {
        _offsets = offsets; Length = length; _wrap = wrap;
        if (wrap && offsets.Any(o => !System.Numerics.BitOperations.IsPow2(o.Length)))
            throw new ArgumentException("wrapping offset lists must be a power of two long");
        Buffers = new byte[offsets.Length][];
        var random = new Random(12345);
        for (int t = 0; t < offsets.Length; t++)
        {
            Buffers[t] = GC.AllocateUninitializedArray<byte>(length, pinned: true);
            random.NextBytes(Buffers[t]);
        }
    }

    public override long OpsFor(int thread) => _wrap ? long.MaxValue : _offsets[thread].Length;

    protected long Offset(int thread, long i)
    {
        var list = _offsets[thread];
        return _wrap ? list[i & (list.Length - 1)] : list[i];
    }
}

internal sealed class EngineRead(CowImage image, long[][] offsets, int length, bool wrap) : OffsetJob(offsets, length, wrap)
{
    public override void Op(int thread, long i) => image.Read(Offset(thread, i), Buffers[thread]);
}

internal sealed class EngineWrite(CowImage image, long[][] offsets, int length, bool wrap = false) : OffsetJob(offsets, length, wrap)
{
    public override void Op(int thread, long i) => image.Write(Offset(thread, i), Buffers[thread]);
}

internal sealed class PlainRead(SafeFileHandle file, long[][] offsets, int length, bool wrap) : OffsetJob(offsets, length, wrap)
{
    public override void Op(int thread, long i)
    {
        var buffer = Buffers[thread].AsSpan();
        long offset = Offset(thread, i);
        while (!buffer.IsEmpty)
        {
            int n = RandomAccess.Read(file, buffer, offset);
            if (n == 0) { buffer.Clear(); return; }
            buffer = buffer[n..];
            offset += n;
        }
    }
}

internal sealed class PlainWrite(SafeFileHandle file, long[][] offsets, int length, bool wrap = false) : OffsetJob(offsets, length, wrap)
{
    public override void Op(int thread, long i) => RandomAccess.Write(file, Buffers[thread], Offset(thread, i));
}

/// <summary>Offset lists: sequential, shuffled subsets of blocks, split between threads.</summary>
internal static class Offsets
{
    public static long[] Sequential(long count, long stride, long first = 0)
    {
        var list = new long[count];
        for (long i = 0; i < count; i++) list[i] = first + i * stride;
        return list;
    }

    /// <summary><paramref name="count"/> distinct blocks of 0..blocks-1 in random order, as byte offsets.</summary>
    public static long[] DistinctBlocks(long blocks, int count, long blockSize, int seed)
    {
        if (count > blocks) throw new ArgumentOutOfRangeException(nameof(count));
        var index = new int[blocks];
        for (int i = 0; i < index.Length; i++) index[i] = i;
        var random = new Random(seed);
        var list = new long[count];
        for (int i = 0; i < count; i++)   // partial Fisher-Yates
        {
            int j = random.Next(i, index.Length);
            (index[i], index[j]) = (index[j], index[i]);
            list[i] = index[i] * blockSize;
        }
        return list;
    }

    public static long[] Shuffled(long[] list, int seed)
    {
        var copy = (long[])list.Clone();
        new Random(seed).Shuffle(copy);
        return copy;
    }

    /// <summary><paramref name="count"/> random picks (with repeats) from the list: a wrap-around read pattern.</summary>
    public static long[] Picks(long[] from, int count, int seed)
    {
        var random = new Random(seed);
        var list = new long[count];
        for (int i = 0; i < count; i++) list[i] = from[random.Next(from.Length)];
        return list;
    }

    /// <summary>Contiguous slices, one per thread.</summary>
    public static long[][] Split(long[] list, int threads)
    {
        var parts = new long[threads][];
        for (int t = 0; t < threads; t++)
        {
            long from = list.LongLength * t / threads, to = list.LongLength * (t + 1) / threads;
            parts[t] = list[(int)from..(int)to];
        }
        return parts;
    }

    public static long[][] One(long[] list) => [list];
}

/// <summary>How a reference waiter waits before it sleeps on its semaphore.</summary>
internal enum WaitStyle
{
    /// <summary>The engine's Doorbell until 4f6fff3: 64 x Thread.SpinWait(20) (PAUSE loops), then sleep.</summary>
    DoorbellSpin,
    /// <summary>Up to 16 x Thread.Yield (sched_yield), then sleep.</summary>
    Yield,
    /// <summary>Sleep at once (SemaphoreSlim.Wait, which spins only briefly itself).</summary>
    Sleep,
}

/// <summary>
/// Reference, not the engine: a request relayed through <c>helpers</c> threads and back to the caller, every
/// thread waiting for its doorbell in one <see cref="WaitStyle"/>. With one helper it has the shape of a map round
/// trip at commit 1c760bc and later (caller ⇄ responder); with two, the shape before it (caller → responder →
/// completion thread → caller).
/// </summary>
internal sealed class HandoffRelay : Job, IDisposable
{
    private readonly Bell[] _bells;
    private readonly Thread[] _helpers;
    private volatile bool _stop;

    public HandoffRelay(int helpers, WaitStyle style)
    {
        _bells = Enumerable.Range(0, helpers + 1).Select(_ => new Bell(style)).ToArray();
        _helpers = Enumerable.Range(0, helpers).Select(h => new Thread(() =>
        {
            while (!_stop) { _bells[h].Wait(); _bells[h + 1].Ring(); }
        }) { IsBackground = true, Name = $"relay-{h}" }).ToArray();
        foreach (var t in _helpers) t.Start();
    }

    public override long OpsFor(int thread) => thread == 0 ? long.MaxValue : 0;

    public override void Op(int thread, long i)
    {
        _bells[0].Ring();
        _bells[^1].Wait();
    }

    public void Dispose()
    {
        _stop = true;
        foreach (var b in _bells) b.Ring();
        foreach (var t in _helpers) t.Join();
    }

    /// <summary>The engine's Doorbell protocol (src/Engine/Ring/Doorbell.cs) with the pre-sleep wait as a parameter.</summary>
    private sealed class Bell(WaitStyle style)
    {
        private readonly SemaphoreSlim _semaphore = new(0);
        private int _rung, _sleeping;

        public void Ring()
        {
            if (Interlocked.Exchange(ref _rung, 1) == 0 && Volatile.Read(ref _sleeping) != 0) _semaphore.Release();
        }

        public void Wait()
        {
            if (style == WaitStyle.DoorbellSpin)
                for (int i = 0; i < 64 && Volatile.Read(ref _rung) == 0; i++) Thread.SpinWait(20);
            else if (style == WaitStyle.Yield)
                for (int i = 0; i < 16 && Volatile.Read(ref _rung) == 0; i++) Thread.Yield();
            while (Volatile.Read(ref _rung) == 0)
            {
                Interlocked.Increment(ref _sleeping);
                if (Volatile.Read(ref _rung) == 0) _semaphore.Wait(100);
                Interlocked.Decrement(ref _sleeping);
            }
            Interlocked.Exchange(ref _rung, 0);
        }
    }
}
