using System.Diagnostics;
using System.Numerics;

namespace CowDisk.Bench;

/// <summary>One kind of operation, run by one or more threads. <see cref="Op"/> must allocate nothing.</summary>
internal abstract class Job
{
    /// <summary>Most ops thread <paramref name="thread"/> runs (long.MaxValue: until the time limit).</summary>
    public abstract long OpsFor(int thread);
    public abstract void Op(int thread, long i);
}

/// <summary>Log-linear latency histogram (32 sub-buckets per power of two, ~3% resolution), fixed size, no allocation.</summary>
internal sealed class Histogram
{
    private const int SubBits = 5, Sub = 1 << SubBits;
    private readonly long[] _counts = new long[64 << SubBits];
    public long Count { get; private set; }
    public long Max { get; private set; }

    public void Record(long ticks)
    {
        if (ticks < 0) ticks = 0;
        int index;
        if (ticks < Sub) index = (int)ticks;
        else
        {
            int e = 63 - BitOperations.LeadingZeroCount((ulong)ticks);
            index = ((e - SubBits + 1) << SubBits) + (int)((ticks >> (e - SubBits)) & (Sub - 1));
        }
        _counts[index]++;
        Count++;
        if (ticks > Max) Max = ticks;
    }

    public void Add(Histogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        Max = Math.Max(Max, other.Max);
    }

    /// <summary>The value (in ticks) at quantile q, the middle of its bucket.</summary>
    public double Quantile(double q)
    {
        if (Count == 0) return 0;
        long rank = (long)Math.Ceiling(q * Count), seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= Math.Max(1, rank)) return Math.Min(Max, Middle(i));
        }
        return Max;
    }

    private static double Middle(int index)
    {
        if (index < Sub) return index;
        int e = (index >> SubBits) + SubBits - 1;
        long low = (long)(Sub + (index & (Sub - 1))) << (e - SubBits);
        long width = 1L << (e - SubBits);
        return low + (width - 1) / 2.0;
    }
}

/// <summary>What one timed phase did.</summary>
internal sealed class Measurement
{
    public required string Name { get; init; }
    public required string Kind { get; init; }          // "engine" or "plain"
    public int Threads { get; init; }
    public long Ops { get; init; }
    public double Seconds { get; init; }                // loop + finish (flush)
    public double FinishSeconds { get; init; }          // the finish (flush) alone
    public long? RingCalls { get; init; }
    public Histogram Latency { get; init; } = new();
    public ProcessStats Stats { get; init; }
    public long BytesPerOp { get; init; }                // set for MB/s figures
    public required string Unit { get; init; }           // "ops/s", "MB/s", "ext/s"
    public Measurement? Baseline { get; set; }           // the plain-file twin
    public string Section { get; set; } = "";            // the report section it was added under
    public double? RssMiB { get; set; }                  // VmRSS after the phase, or a child process's peak RSS (set where memory is the question)
    public double? HeapRetainedMiB { get; set; }         // managed heap after a full GC, minus before the phase (what the phase left alive)

    public double Rate => RateOver(Seconds);
    public double RateWithoutFinish => RateOver(Seconds - FinishSeconds);

    private double RateOver(double seconds) => seconds <= 0 ? 0
        : Unit == "MB/s" ? Ops * (double)BytesPerOp / 1e6 / seconds : Ops / seconds;
}

internal static class Runner
{
    private static readonly double TicksToMicros = 1e6 / Stopwatch.Frequency;
    public static double Micros(double ticks) => ticks * TicksToMicros;

    /// <summary>
    /// Runs <paramref name="job"/> on <paramref name="threads"/> threads released together, times the loops and then
    /// <paramref name="finish"/> (a flush), and records per-op latency and process counters.
    /// </summary>
    public static Measurement Run(string name, string kind, int threads, Job job, string unit = "ops/s",
        double maxSeconds = 0, Func<long>? ringCalls = null, Action? finish = null, long bytesPerOp = 0)
    {
        var histograms = new Histogram[threads];
        var done = new long[threads];
        var workers = new Thread[threads];
        using var gate = new ManualResetEventSlim(false);
        long deadline = long.MaxValue;
        for (int t = 0; t < threads; t++)
        {
            int thread = t;
            var h = histograms[t] = new Histogram();
            long ops = job.OpsFor(t);
            workers[t] = new Thread(() =>
            {
                gate.Wait();
                long limit = Volatile.Read(ref deadline);
                long i = 0, prev = Stopwatch.GetTimestamp();
                while (i < ops)
                {
                    job.Op(thread, i++);
                    long now = Stopwatch.GetTimestamp();
                    h.Record(now - prev);
                    prev = now;
                    if (now >= limit) break;
                }
                done[thread] = i;
            }) { IsBackground = true, Name = $"bench-{t}" };
            workers[t].Start();
        }
        long ring0 = ringCalls?.Invoke() ?? 0;
        var before = ProcessStats.Now();
        long start = Stopwatch.GetTimestamp();
        Volatile.Write(ref deadline, maxSeconds > 0 ? start + (long)(maxSeconds * Stopwatch.Frequency) : long.MaxValue);
        gate.Set();
        foreach (var w in workers) w.Join();
        long loopEnd = Stopwatch.GetTimestamp();
        finish?.Invoke();
        long end = Stopwatch.GetTimestamp();
        var stats = ProcessStats.Now() - before;
        long ring1 = ringCalls?.Invoke() ?? 0;

        var all = new Histogram();
        foreach (var h in histograms) all.Add(h);
        return new Measurement
        {
            Name = name, Kind = kind, Threads = threads, Ops = done.Sum(), Unit = unit, BytesPerOp = bytesPerOp,
            Seconds = (end - start) / (double)Stopwatch.Frequency,
            FinishSeconds = (end - loopEnd) / (double)Stopwatch.Frequency,
            RingCalls = ringCalls is null ? null : ring1 - ring0,
            Latency = all, Stats = stats,
        };
    }

    /// <summary>Times one action (an open, a close) as a one-op measurement that reports <paramref name="items"/> per second.</summary>
    public static Measurement Once(string name, Func<long> action, string unit, Func<long>? ringCalls = null)
    {
        long ring0 = ringCalls?.Invoke() ?? 0;
        var before = ProcessStats.Now();
        long start = Stopwatch.GetTimestamp();
        long items = action();
        long end = Stopwatch.GetTimestamp();
        var stats = ProcessStats.Now() - before;
        var h = new Histogram();
        h.Record(end - start);
        return new Measurement
        {
            Name = name, Kind = "engine", Threads = 1, Ops = items, Unit = unit,
            Seconds = (end - start) / (double)Stopwatch.Frequency,
            RingCalls = ringCalls is null ? null : ringCalls() - ring0,
            Latency = h, Stats = stats,
        };
    }
}
