using CowDisk.Engine.Target;
using Xunit;

namespace CowDisk.Tests.Target;

public class DrainGateTests
{
    /// <summary>Between Close returning and Open, no I/O is inside; every I/O that entered also left; nothing hangs.</summary>
    [Fact]
    public void No_io_is_inside_while_the_gate_is_closed()
    {
        var gate = new DrainGate();
        int inside = 0, violations = 0;
        long entered = 0;
        using var stop = new CancellationTokenSource();
        var workers = Enumerable.Range(0, 6).Select(_ => Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                int s = gate.Enter();
                Interlocked.Increment(ref inside);
                Interlocked.Increment(ref entered);
                Thread.SpinWait(50);
                Interlocked.Decrement(ref inside);
                gate.Exit(s);
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        var closers = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
        {
            for (int i = 0; i < 2000; i++)
            {
                gate.Close();
                if (Volatile.Read(ref inside) != 0) Interlocked.Increment(ref violations);
                Thread.SpinWait(20);
                if (Volatile.Read(ref inside) != 0) Interlocked.Increment(ref violations);
                gate.Open();
            }
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(closers, TimeSpan.FromSeconds(120)), "a close never finished");
        stop.Cancel();
        Assert.True(Task.WaitAll(workers, TimeSpan.FromSeconds(30)), "an entrant never got in again");
        Assert.Equal(0, violations);
        Assert.True(Interlocked.Read(ref entered) > 0);
        Assert.False(gate.IsClosed);
    }
}
