using System.Collections.Concurrent;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>The threads that run requests against the devices (the engine's calls block), shared by all connections.</summary>
internal sealed class NbdWorkers : IDisposable
{
    private readonly BlockingCollection<NbdWork> _queue = new(new ConcurrentQueue<NbdWork>());
    private readonly Thread[] _threads;

    public NbdWorkers(int count)
    {
        _threads = new Thread[count];
        for (int i = 0; i < count; i++)
        {
            _threads[i] = new Thread(Run) { IsBackground = true, Name = $"nbd worker {i}" };
            _threads[i].Start();
        }
    }

    public void Enqueue(NbdWork work) => _queue.Add(work);

    private void Run()
    {
        foreach (var work in _queue.GetConsumingEnumerable()) work.Connection.Execute(work);
    }

    /// <summary>Runs what is queued, then ends the threads.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        foreach (var thread in _threads) thread.Join();
        _queue.Dispose();
    }
}
