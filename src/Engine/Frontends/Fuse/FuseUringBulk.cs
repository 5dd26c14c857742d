using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using CowDisk.Engine.Native;
using CowDisk.Format.IoUring;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// Threads with io_uring rings of their own that serve big READs and WRITEs (over <see cref="FuseUringQueue.BulkAbove"/>).
/// The kernel copies a request's data in the thread whose ring holds its entry (a write's payload as it delivers
/// the request, a read's answer as the entry is committed), so with one ring per queue one thread copied every
/// megabyte of the queue in turn (1 MiB reads QD8: 0.71x /dev/fuse, where each worker copies its own). A queue
/// thread posts a big request here; the worker serves it and commits the entry through its own ring (any ring of
/// the process may commit any entry), and the entry stays there: the next request the kernel puts in it comes to
/// this worker, which copies it. A big one the worker serves and keeps; any other it hands, unserved, back to the
/// entry's queue thread, which dispatches it as its own (the pool for an FSYNC, in place for a small READ) and
/// whose commit brings the entry home.
/// </summary>
internal sealed class FuseUringBulk : IDisposable
{
    /// <summary>A ring need not hold every entry at once: a full one submits before it takes more.</summary>
    private const int MaxRingEntries = 4096;

    private readonly FuseServer _server;
    private readonly IReadOnlyList<FuseUringQueue> _queues;
    private readonly Worker[] _workers;
    private volatile bool _stopping;

    public FuseUringBulk(FuseServer server, IReadOnlyList<FuseUringQueue> queues, int workers)
    {
        _server = server;
        _queues = queues;
        uint ringEntries = (uint)Math.Min(queues.Sum(q => q.EntryCount) + 4, MaxRingEntries);
        _workers = new Worker[workers];
        try
        {
            for (int i = 0; i < workers; i++) _workers[i] = new Worker(this, i, ringEntries);
        }
        catch
        {
            var started = _workers.Where(w => w is not null).ToArray();
            _stopping = true;
            foreach (var worker in started) worker.Wake();
            if (started.All(w => w.Join(TimeSpan.FromSeconds(10)))) foreach (var worker in started) worker.Dispose();
            throw;
        }
    }

    public int Count => _workers.Length;

    /// <summary>Hands a big request to the live worker with the least work; false if none is left.</summary>
    public bool Post(FuseUringQueue queue, int entry)
    {
        Worker? best = null;
        foreach (var worker in _workers)
            if (!worker.Dead && (best is null || worker.Load < best.Load)) best = worker;
        if (best is null) return false;
        best.Post(queue, entry);
        return true;
    }

    /// <summary>Hands a request that came to <paramref name="from"/> to a live worker with nothing to do, if there is one.</summary>
    private bool PostToIdle(Worker from, FuseUringQueue queue, int entry)
    {
        foreach (var worker in _workers)
            if (worker != from && !worker.Dead && worker.Load == 0) { worker.Post(queue, entry); return true; }
        return false;
    }

    /// <summary>
    /// Stops the workers; closing their rings cancels the entries they hold. Only once the connection has ended
    /// (unmounted or aborted): what a worker still holds then is lost, not answered. False if one did not end in time.
    /// </summary>
    public bool Stop(TimeSpan timeout)
    {
        _stopping = true;
        bool all = true;
        foreach (var worker in _workers) worker.Wake();
        foreach (var worker in _workers) all &= worker.Join(timeout);
        return all;
    }

    /// <summary>Only after <see cref="Stop"/> returned true: the workers' event fds and buffers go.</summary>
    public void Dispose()
    {
        foreach (var worker in _workers) worker.Dispose();
    }

    private sealed unsafe class Worker : IDisposable
    {
        private const ulong WakeTag = ulong.MaxValue;
        private readonly FuseUringBulk _owner;
        private IoUring _ring = null!;   // made by the thread that submits to it (SINGLE_ISSUER)
        private readonly uint _ringEntries;
        private string? _failure;
        private readonly ManualResetEventSlim _ready = new();
        private readonly EventFd _wake = new();
        private readonly ConcurrentQueue<(FuseUringQueue Queue, int Entry)> _inbox = new();
        private readonly Thread _thread;
        private readonly ulong* _wakeBuffer;
        private int _load;   // requests posted or arrived here and not yet served
        private volatile bool _dead;
        private readonly List<(FuseUringQueue Queue, int Entry)> _arrived = [];
        private readonly HashSet<ulong> _held = [];   // entries this ring holds (tags), this thread only

        public Worker(FuseUringBulk owner, int index, uint ringEntries)
        {
            _owner = owner;
            _ringEntries = ringEntries;
            _wakeBuffer = (ulong*)NativeMemory.AlignedAlloc(64, 64);
            _thread = new Thread(Run) { IsBackground = true, Name = $"fuse-bulk-{index}" };
            _thread.Start();
            if (!_ready.Wait(TimeSpan.FromSeconds(10))) throw new IOException($"bulk worker {index} did not start");
            if (_failure is not null) { _thread.Join(); Dispose(); throw new IOException(_failure); }
        }

        public int Load => Volatile.Read(ref _load);

        /// <summary>The thread has ended: nothing is posted to it any more.</summary>
        public bool Dead => _dead;

        public void Post(FuseUringQueue queue, int entry)
        {
            Interlocked.Increment(ref _load);
            _inbox.Enqueue((queue, entry));
            _wake.Signal();   // one write per big request: not worth a sleeping flag
        }

        public void Wake() => _wake.Signal();

        public bool Join(TimeSpan timeout) => _thread.Join(timeout);

        private static ulong Tag(FuseUringQueue queue, int entry) => ((ulong)(uint)queue.Index << 32) | (uint)entry;

        private void Run()
        {
            try { _ring = FuseUringQueue.CreateRing(_ringEntries); }
            catch (IOException e) { _failure = e.Message; _dead = true; _ready.Set(); return; }
            _ready.Set();
            try
            {
                ProcessControl.MarkThreadAsIoFlusher();
                ArmWake();
                while (true)
                {
                    while (_inbox.TryDequeue(out var posted))
                    {
                        Take(posted.Queue, posted.Entry);
                        Interlocked.Decrement(ref _load);
                    }
                    if (_owner._stopping) return;
                    FuseUringQueue.ThrowIfBroken(_ring.SubmitAndWait(1));
                    while (_ring.TryTakeCompletion(out var completion))
                    {
                        if (completion.UserData == WakeTag) { ArmWake(); continue; }
                        _held.Remove(completion.UserData);
                        var queue = _owner._queues[(int)(completion.UserData >> 32)];
                        int entry = (int)(uint)completion.UserData;
                        if (completion.Result < 0) queue.EntryEnded(entry);   // the connection ended, or the commit was refused
                        else { Interlocked.Increment(ref _load); _arrived.Add((queue, entry)); }
                    }
                    // Several at once (each entry kept gets the next request for it): the first is served here, the
                    // others by idle workers rather than one after another behind it.
                    for (int i = 0; i < _arrived.Count; i++)
                    {
                        var (queue, entry) = _arrived[i];
                        if (i == 0 || !_owner.PostToIdle(this, queue, entry)) Take(queue, entry);
                        Interlocked.Decrement(ref _load);
                    }
                    _arrived.Clear();
                }
            }
            catch (Exception e)
            {
                if (!_owner._stopping)
                {
                    // Entries on this ring would wait forever: ending the connection makes I/O fail instead of hang.
                    _owner._server.Log($"fuse: io_uring bulk worker failed ({e.Message}); ending the FUSE connection");
                    _owner._server.AbortConnection();
                }
            }
            finally
            {
                _dead = true;
                // Were the abort to fail, the entries this ring held still end for their queue threads' count.
                if (!_owner._stopping)
                    foreach (ulong tag in _held) _owner._queues[(int)(tag >> 32)].EntryEnded((int)(uint)tag);
                _ring.Dispose();   // closing the ring cancels the entries it holds
            }
        }

        /// <summary>A request for this worker: a big one is served and its entry kept on this ring; any other goes back to its queue thread.</summary>
        private void Take(FuseUringQueue queue, int entry)
        {
            if (!queue.WantsBulk(entry)) { queue.Return(entry); return; }
            if (!queue.ServeEntry(entry)) { queue.HandBack(entry); return; }   // an answer without data (an error): committed at home
            ulong tag = Tag(queue, entry);
            queue.WriteCommit(FuseUringQueue.NextEntry(_ring), entry, tag);
            _held.Add(tag);
            // The answer goes out now, not after the rest of the batch (the kernel copies a read's data here).
            FuseUringQueue.ThrowIfBroken(_ring.SubmitAndWait(0));
        }

        private void ArmWake() =>
            IoUringSqe.Read(_wake.Fd, (ulong)_wakeBuffer, sizeof(ulong), 0, WakeTag).Write(FuseUringQueue.NextEntry(_ring));

        /// <summary>Once the thread has ended (its ring with it).</summary>
        public void Dispose()
        {
            NativeMemory.AlignedFree(_wakeBuffer);
            _wake.Dispose();
            _ready.Dispose();
        }
    }
}
