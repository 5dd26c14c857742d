using System.Collections.Concurrent;
using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// Threads with io_uring rings of their own that serve big READs and WRITEs (over <see cref="FuseUringQueue.BulkAbove"/>).
/// The kernel copies a request's data in the thread whose ring holds its entry (a write's payload as it delivers
/// the request, a read's answer as the entry is committed), so with one ring per queue one thread copied every
/// megabyte of the queue in turn (1 MiB reads QD8: 3.1-3.9 GB/s against 5.2-5.6 over /dev/fuse, where each worker
/// copies its own). A queue thread posts a big request here; the worker serves it and commits the entry through
/// its own ring, which the entry then stays on: the next request the kernel puts in it comes to this worker,
/// which copies it, serves it in place, and, if it is big, keeps the entry, else hands it back to its queue's
/// thread (small requests are cheapest in the queue threads' batches). Entries move between rings only through
/// COMMIT_AND_FETCH, which any ring of the process may submit for any entry.
/// </summary>
internal sealed class FuseUringBulk : IDisposable
{
    private readonly FuseServer _server;
    private readonly IReadOnlyList<FuseUringQueue> _queues;
    private readonly Worker[] _workers;
    private volatile bool _stopping;

    public FuseUringBulk(FuseServer server, IReadOnlyList<FuseUringQueue> queues, int workers)
    {
        _server = server;
        _queues = queues;
        int entries = queues.Sum(q => q.EntryCount);
        _workers = new Worker[workers];
        try
        {
            for (int i = 0; i < workers; i++) _workers[i] = new Worker(this, i, (uint)entries + 4);
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

    /// <summary>Hands a big request to the worker with the least work.</summary>
    public void Post(FuseUringQueue queue, int entry)
    {
        var best = _workers[0];
        foreach (var worker in _workers) if (worker.Load < best.Load) best = worker;
        best.Post(queue, entry);
    }

    /// <summary>Hands a request that came to <paramref name="from"/> to a worker with nothing to do, if there is one.</summary>
    private bool PostToIdle(Worker from, FuseUringQueue queue, int entry)
    {
        foreach (var worker in _workers)
            if (worker != from && worker.Load == 0) { worker.Post(queue, entry); return true; }
        return false;
    }

    /// <summary>Stops the workers; closing their rings gives back the entries they hold. False if one did not end in time.</summary>
    public bool Stop(TimeSpan timeout)
    {
        _stopping = true;
        bool all = true;
        foreach (var worker in _workers) worker.Wake();
        foreach (var worker in _workers) all &= worker.Join(timeout);
        return all;
    }

    public void Dispose()
    {
        foreach (var worker in _workers) worker.Dispose();
    }

    private sealed unsafe class Worker : IDisposable
    {
        private const ulong WakeTag = ulong.MaxValue;
        private readonly FuseUringBulk _owner;
        private IoUring _ring = null!;   // made by the thread that submits to it (SINGLE_ISSUER)
        private readonly uint _entries;
        private string? _failure;
        private readonly ManualResetEventSlim _ready = new();
        private readonly EventFd _wake = new();
        private readonly ConcurrentQueue<(FuseUringQueue Queue, int Entry)> _inbox = new();
        private readonly Thread _thread;
        private readonly ulong* _wakeBuffer;
        private int _load;   // posted and not yet served
        private readonly List<(FuseUringQueue Queue, int Entry)> _arrived = [];

        public Worker(FuseUringBulk owner, int index, uint entries)
        {
            _owner = owner;
            _entries = entries;
            _wakeBuffer = (ulong*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(64, 64);
            _thread = new Thread(Run) { IsBackground = true, Name = $"fuse-bulk-{index}" };
            _thread.Start();
            if (!_ready.Wait(TimeSpan.FromSeconds(10))) throw new IOException($"bulk worker {index} did not start");
            if (_failure is not null) { _thread.Join(); Dispose(); throw new IOException(_failure); }
        }

        public int Load => Volatile.Read(ref _load);

        public void Post(FuseUringQueue queue, int entry)
        {
            Interlocked.Increment(ref _load);
            _inbox.Enqueue((queue, entry));
            _wake.Signal();   // one write per megabyte: not worth a sleeping flag
        }

        public void Wake() => _wake.Signal();

        public bool Join(TimeSpan timeout) => _thread.Join(timeout);

        private void Run()
        {
            try { _ring = FuseUringQueue.CreateRing(_entries); }
            catch (IOException e) { _failure = e.Message; _ready.Set(); return; }
            _ready.Set();
            try
            {
                ProcessControl.MarkThreadAsIoFlusher();
                ArmWake();
                while (true)
                {
                    while (_inbox.TryDequeue(out var posted))
                    {
                        Serve(posted.Queue, posted.Entry);
                        Interlocked.Decrement(ref _load);
                    }
                    if (_owner._stopping) return;
                    FuseUringQueue.ThrowIfBroken(_ring.SubmitAndWait(1));
                    while (_ring.TryTakeCompletion(out var completion))
                    {
                        if (completion.UserData == WakeTag) { ArmWake(); continue; }
                        var queue = _owner._queues[(int)(completion.UserData >> 32)];
                        int entry = (int)(uint)completion.UserData;
                        if (completion.Result < 0) queue.EntryEnded(entry);   // the connection ended, or the ring is going
                        else _arrived.Add((queue, entry));
                    }
                    // Several at once (each entry kept gets the next request for it): the first is served here, the
                    // others by idle workers rather than one after another behind it.
                    for (int i = 0; i < _arrived.Count; i++)
                        if (i == 0 || !_owner.PostToIdle(this, _arrived[i].Queue, _arrived[i].Entry)) Serve(_arrived[i].Queue, _arrived[i].Entry);
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
                _ring.Dispose();   // closing the ring cancels the entries it holds
            }
        }

        /// <summary>Serves the entry's request here; keeps the entry on this ring if it was big, else hands it back.</summary>
        private void Serve(FuseUringQueue queue, int entry)
        {
            bool big = queue.ServeEntry(entry);
            if (!big) { queue.HandBack(entry); return; }
            var sqe = _ring.NextEntry();
            if (sqe.IsEmpty)
            {
                FuseUringQueue.ThrowIfBroken(_ring.SubmitAndWait(0));   // full: hand what is queued to the kernel first
                sqe = _ring.NextEntry();
                if (sqe.IsEmpty) throw new InvalidOperationException("io_uring submission ring stays full");
            }
            queue.WriteCommit(sqe, entry, ((ulong)(uint)queue.Index << 32) | (uint)entry);
        }

        private void ArmWake()
        {
            var sqe = _ring.NextEntry();   // never full here: one wake read, and at most one entry per entry of the queues
            Format.IoUring.IoUringSqe.Read(_wake.Fd, (ulong)_wakeBuffer, sizeof(ulong), 0, WakeTag).Write(sqe);
        }

        /// <summary>Once the thread has ended (its ring with it).</summary>
        public void Dispose()
        {
            System.Runtime.InteropServices.NativeMemory.AlignedFree(_wakeBuffer);
            _wake.Dispose();
            _ready.Dispose();
        }
    }
}
