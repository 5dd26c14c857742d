namespace CowDisk.Tests.Attach;

/// <summary>
/// What each 4 KiB sector of a device may hold after a crash, under the crash contract (DESIGN §4): its content
/// as of the last completed fsync, or any content written to it after that, nothing else.
///
/// Several threads write at once, but a sector is never the target of two operations in flight (TryBegin refuses
/// an overlapping range), so every sector has a total order of operations: its history. Time is a counter
/// (Tick): an operation completes at the tick taken after its syscall returned, an fsync starts at the tick taken
/// before it is issued. A completed fsync that started at tick F makes durable every operation completed before F.
/// For a sector, the durable content is therefore that of the last operation in its history completed before the
/// latest F of any completed fsync (or the baseline); the operations after it, completed, failed or still in
/// flight at the kill, are the "written later" contents. Discards and punched holes write generation 0 (zeros).
/// </summary>
public sealed class SectorModel
{
    private readonly object _gate = new();
    private readonly long[] _baseline;
    private readonly List<int>?[] _history;
    private readonly bool[] _busy;
    private readonly List<Operation> _operations = [];
    private long _clock;
    private long _durableBefore = long.MinValue;

    private record struct Operation(long Generation, long CompletedAt);

    public SectorModel(long sectors)
    {
        _baseline = new long[sectors];
        _history = new List<int>?[sectors];
        _busy = new bool[sectors];
    }

    public long Sectors => _baseline.Length;

    /// <summary>Claims sectors [first, first + count) for one operation that writes generation; null if any is busy.</summary>
    public int? TryBegin(long first, int count, long generation)
    {
        lock (_gate)
        {
            for (long s = first; s < first + count; s++) if (_busy[s]) return null;
            int id = _operations.Count;
            _operations.Add(new Operation(generation, long.MaxValue));
            for (long s = first; s < first + count; s++)
            {
                _busy[s] = true;
                (_history[s] ??= []).Add(id);
            }
            return id;
        }
    }

    /// <summary>The operation's syscall returned success.</summary>
    public void Complete(int id, long first, int count)
    {
        long now = Interlocked.Increment(ref _clock);
        lock (_gate)
        {
            _operations[id] = _operations[id] with { CompletedAt = now };
            for (long s = first; s < first + count; s++) _busy[s] = false;
        }
    }

    /// <summary>The operation failed: it may or may not have reached the device, so it stays a "later" content.</summary>
    public void Fail(long first, int count)
    {
        lock (_gate) for (long s = first; s < first + count; s++) _busy[s] = false;
    }

    /// <summary>Call right before issuing an fsync; pass the result to FsyncCompleted if it succeeds.</summary>
    public long FsyncStarting() => Interlocked.Increment(ref _clock);

    public void FsyncCompleted(long startedAt)
    {
        lock (_gate) _durableBefore = Math.Max(_durableBefore, startedAt);
    }

    /// <summary>The durable generation of a sector and the generations written to it later (oldest first).</summary>
    public (long Durable, List<long> Later) Allowed(long sector)
    {
        lock (_gate)
        {
            var history = _history[sector];
            if (history is null) return (_baseline[sector], []);
            int durableAt = -1;
            for (int i = history.Count - 1; i >= 0; i--)
            {
                if (_operations[history[i]].CompletedAt < _durableBefore) { durableAt = i; break; }
            }
            long durable = durableAt >= 0 ? _operations[history[durableAt]].Generation : _baseline[sector];
            var later = new List<long>(history.Count - durableAt - 1);
            for (int i = durableAt + 1; i < history.Count; i++) later.Add(_operations[history[i]].Generation);
            return (durable, later);
        }
    }

    /// <summary>After verification and an fsync on the re-attached device: what was read is the new durable state.</summary>
    public void Reset(long[] contents)
    {
        lock (_gate)
        {
            Array.Copy(contents, _baseline, _baseline.Length);
            Array.Clear(_history);
            Array.Clear(_busy);
            _operations.Clear();
            _durableBefore = long.MinValue;
        }
    }
}
