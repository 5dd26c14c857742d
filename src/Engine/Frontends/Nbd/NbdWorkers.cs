namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>The threads that run requests against the devices (the engine's calls block), shared by all connections.</summary>
internal sealed class NbdWorkers : IDisposable
{
    // A plain monitor, not BlockingCollection: its SemaphoreSlim spins with sched_yield before it sleeps, and
    // with a client slower than the server (nbdcopy to a file) every idle worker did that for every request:
    // 40,000 sched_yield calls and 120,000 context switches for a 1 GiB copy.
    private readonly Queue<NbdWork> _queue = new();
    private readonly Thread[] _threads;
    private int _idle;
    private bool _completed;

    public NbdWorkers(int count)
    {
        _threads = new Thread[count];
        for (int i = 0; i < count; i++)
        {
            _threads[i] = new Thread(Run) { IsBackground = true, Name = $"nbd worker {i}" };
            _threads[i].Start();
        }
    }

    public void Enqueue(NbdWork work)
    {
        lock (_queue)
        {
            if (_completed) throw new InvalidOperationException("the NBD workers have stopped");
            _queue.Enqueue(work);
            if (_idle > 0) Monitor.Pulse(_queue);
        }
    }

    private void Run()
    {
        while (true)
        {
            NbdWork work;
            lock (_queue)
            {
                while (_queue.Count == 0)
                {
                    if (_completed) return;
                    _idle++;
                    Monitor.Wait(_queue);
                    _idle--;
                }
                work = _queue.Dequeue();
            }
            work.Connection.Execute(work);
        }
    }

    /// <summary>Runs what is queued, then ends the threads.</summary>
    public void Dispose()
    {
        lock (_queue)
        {
            _completed = true;
            Monitor.PulseAll(_queue);
        }
        foreach (var thread in _threads) thread.Join();
    }
}
