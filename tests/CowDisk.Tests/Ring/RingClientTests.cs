using System.Collections.Concurrent;
using CowDisk.Format.Ring;
using Xunit;

namespace CowDisk.Tests.Ring;

public class RingClientTests
{
    /// <summary>
    /// Callers in lock-step rounds, so every round hands the consumer role over while the others wait, with the
    /// client's wait timeouts off: a follower that misses the leader's step-down (or any other lost wake) sleeps
    /// for ever and the round never ends. The store-load race this guards against is rare on real hardware, so
    /// a pass does not prove its absence; a hang here always means a lost wake-up.
    /// </summary>
    [Fact]
    public void Leader_hand_offs_need_no_wait_timeout()
    {
        const int callers = 4, rounds = 5_000;
        using var ring = new RingHarness(waitMs: Timeout.Infinite);
        ring.StartEcho();
        using var barrier = new Barrier(callers);
        var errors = new ConcurrentQueue<string>();
        var threads = Enumerable.Range(0, callers).Select(c => new Thread(() =>
        {
            for (int r = 0; r < rounds; r++)
            {
                barrier.SignalAndWait();
                long block = (long)r * callers + c;
                var rsp = ring.Client.Call(RingHarness.ReadRequest(block));
                if (rsp.Block != block || rsp.DeviceBlock != block + 1000) errors.Enqueue($"block {block} got the answer for {rsp.Block}");
            }
        }) { IsBackground = true, Name = $"caller-{c}" }).ToArray();
        foreach (var t in threads) t.Start();
        ring.JoinOrFail(threads, "lock-step callers");
        Assert.Empty(errors);
        Assert.Equal(callers * rounds, ring.Client.Calls);
    }
}
