using System.Collections.Concurrent;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Format.Mapping;
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

    /// <summary>
    /// Eight callers share two call slots, wait timeouts off: a caller that finds every slot taken must be woken
    /// when one is returned (a lost wake sleeps for ever), two callers must never hold one slot (one would get the
    /// other's answer), and every round trip is counted once.
    /// </summary>
    [Fact]
    public void More_callers_than_call_slots_take_turns_with_no_wait_timeout()
    {
        const int callers = 8, calls = 3_000;
        using var ring = new RingHarness(waitMs: Timeout.Infinite, maxInFlight: 2);
        ring.StartEcho();
        var errors = new ConcurrentQueue<string>();
        var threads = Enumerable.Range(0, callers).Select(c => new Thread(() =>
        {
            for (int i = 0; i < calls; i++)
            {
                long block = (long)i * callers + c;
                var rsp = ring.Client.Call(RingHarness.ReadRequest(block));
                if (rsp.Block != block || rsp.DeviceBlock != block + 1000) errors.Enqueue($"block {block} got the answer for {rsp.Block}");
            }
        }) { IsBackground = true, Name = $"caller-{c}" }).ToArray();
        foreach (var t in threads) t.Start();
        ring.JoinOrFail(threads, "callers sharing two slots");
        Assert.Empty(errors);
        Assert.Equal(callers * calls, ring.Client.Calls);
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > until) Assert.Fail($"setup: {what}");
            Thread.Sleep(5);
        }
    }

    /// <summary>
    /// Both pools full: a caller waits for an ordinary slot, then one for a nested slot. A nested slot returned must
    /// wake the nested waiter: with one waiter count and semaphore for both pools its one wake went to the ordinary
    /// waiter, which found its pool still full and slept again, and the nested waiter slept on beside a free slot.
    /// </summary>
    [Fact]
    public void A_returned_nested_slot_wakes_the_caller_waiting_for_a_nested_slot_not_one_waiting_for_an_ordinary_slot()
    {
        using var ring = new RingHarness(waitMs: Timeout.Infinite, maxInFlight: 1);
        var client = ring.Client;

        // The one ordinary slot: held (its answer is withheld).
        var held = client.Begin(RingHarness.ReadRequest(1));
        var heldRequest = ring.TakeRequest();

        // The eight nested slots: held by eight nested calls whose answers are withheld.
        var nested = Enumerable.Range(0, 8).Select(k => new Thread(() => client.CallNested(RingHarness.ReadRequest(100 + k)))
            { IsBackground = true, Name = $"nested-{k}" }).ToArray();
        foreach (var t in nested) t.Start();
        var nestedRequests = Enumerable.Range(0, 8).Select(_ => ring.TakeRequest()).ToArray();

        // An ordinary caller waits for the ordinary pool ...
        var ordinary = new Thread(() => client.Call(RingHarness.ReadRequest(2))) { IsBackground = true, Name = "ordinary-waiter" };
        ordinary.Start();
        WaitUntil(() => client.WaitingForSlots == 1, "the ordinary caller waits for a slot");
        Thread.Sleep(300);   // asleep in the semaphore, past SemaphoreSlim's spin

        // ... then a nested caller for the nested pool.
        var nestedWaiter = new Thread(() => client.CallNested(RingHarness.ReadRequest(200))) { IsBackground = true, Name = "nested-waiter" };
        nestedWaiter.Start();
        WaitUntil(() => client.WaitingForSlots == 2, "the nested caller waits for a slot");
        Thread.Sleep(300);

        // One nested call is answered: its slot is returned, and the nested waiter should take it and send its request.
        ring.Respond(RingHarness.AnswerTo(nestedRequests[0]));
        Assert.True(nested.Any(t => t.Join(TimeSpan.FromSeconds(5))), "the answered nested call did not finish");

        bool sent = false;
        var until = DateTime.UtcNow.AddSeconds(5);
        while (!sent && DateTime.UtcNow < until)
        {
            sent = ring.Requests.TryConsume(out var ev, out _);
            if (sent) ring.Respond(RingHarness.AnswerTo(ev));
            else Thread.Sleep(10);
        }
        int waiters = client.WaitingForSlots;

        // Clean up: answer everything, let the held call end; every Return then wakes someone.
        foreach (var r in nestedRequests.Skip(1)) ring.Respond(RingHarness.AnswerTo(r));
        ring.Respond(RingHarness.AnswerTo(heldRequest));
        ring.StartEcho();
        client.End(held);
        ring.JoinOrFail(nested.Append(ordinary).Append(nestedWaiter), "cleanup");

        Assert.True(sent, $"a nested slot was free for 5 s but the nested waiter never claimed it ({waiters} callers still counted as waiting): " +
            "the Return's one wake went to the caller waiting for an ordinary slot");
    }

    /// <summary>
    /// Callers wait (leader and followers, wait timeouts off) when the responder hangs up: an answer already in
    /// the ring is still delivered, every other caller fails with an I/O error instead of waiting for ever, and
    /// later calls and posts fail at once.
    /// </summary>
    [Fact]
    public void Waiting_callers_fail_when_the_responder_hangs_up()
    {
        const int callers = 4;
        using var ring = new RingHarness(waitMs: Timeout.Infinite);
        var outcomes = new ConcurrentDictionary<long, Exception?>();
        var threads = Enumerable.Range(0, callers).Select(c => new Thread(() =>
        {
            try
            {
                var rsp = ring.Client.Call(RingHarness.ReadRequest(c));
                outcomes[c] = rsp.Block == c ? null : new InvalidOperationException($"wrong answer {rsp.Block}");
            }
            catch (Exception e) { outcomes[c] = e; }
        }) { IsBackground = true, Name = $"caller-{c}" }).ToArray();
        foreach (var t in threads) t.Start();

        var requests = Enumerable.Range(0, callers).Select(_ => ring.TakeRequest()).ToArray();   // all are waiting now
        ring.Respond(RingHarness.AnswerTo(requests[0]));
        ring.ResponseBell.Close();
        ring.JoinOrFail(threads, "callers of a responder that hung up");

        Assert.Null(outcomes[requests[0].Block]);
        foreach (var request in requests.Skip(1)) Assert.IsType<BlockDeviceException>(outcomes[request.Block]);
        Assert.Throws<BlockDeviceException>(() => ring.Client.Call(RingHarness.ReadRequest(99)));
        Assert.Throws<BlockDeviceException>(() => ring.Client.Post(new RingEvent { Type = RingEventType.MapBlockDone, Block = 1, Count = 1 }));
    }

    /// <summary>
    /// A malformed response slot (it might have been an INVALIDATE) breaks the ring: the cache is emptied and
    /// takes no more answers, the call still waiting fails, an answer already behind the bad slot is still delivered, and
    /// later calls fail at once.
    /// </summary>
    [Fact]
    public void A_malformed_response_breaks_the_ring_and_empties_the_cache()
    {
        var cache = new MappingCache(1024);
        using var ring = new RingHarness(waitMs: Timeout.Infinite, cache: cache);
        cache.Store(500, MappingCache.Encode(MappingSource.Data, 77));
        var outcomes = new ConcurrentDictionary<long, Exception?>();
        var threads = new long[] { 1, 2 }.Select(block => new Thread(() =>
        {
            try
            {
                var rsp = ring.Client.Call(RingHarness.ReadRequest(block));
                outcomes[block] = rsp.Block == block ? null : new InvalidOperationException($"wrong answer {rsp.Block}");
            }
            catch (Exception e) { outcomes[block] = e; }
        }) { IsBackground = true, Name = $"caller-{block}" }).ToArray();
        foreach (var t in threads) t.Start();

        var first = ring.TakeRequest();
        var second = ring.TakeRequest();
        // Both at once: an answer already behind the bad slot is delivered; one that arrives after the
        // leader found the ring broken and empty may fail, so the test must not leave that to timing.
        ring.RespondAll(new RingEvent { Type = (RingEventType)99, Id = first.Id, Block = first.Block, Count = 1 },
            RingHarness.AnswerTo(second));
        ring.JoinOrFail(threads, "callers after a malformed response");

        Assert.IsType<BlockDeviceException>(outcomes[first.Block]);
        Assert.Null(outcomes[second.Block]);
        Assert.Equal(0UL, cache.Get(500));            // emptied
        Assert.Equal(0UL, cache.Get(second.Block));   // the later answer was not cached
        Assert.Throws<BlockDeviceException>(() => ring.Client.Call(RingHarness.ReadRequest(3)));
    }

    /// <summary>
    /// An answer whose id belongs to a call that has ended (the responder answers a malformed DONE with the id
    /// it carried) must not complete the next call that reuses the slot.
    /// </summary>
    [Fact]
    public void An_answer_for_a_finished_call_does_not_complete_the_next_one()
    {
        using var ring = new RingHarness(waitMs: Timeout.Infinite, maxInFlight: 1);
        var caller = new Thread(() => ring.Client.Call(RingHarness.ReadRequest(1))) { IsBackground = true, Name = "caller-1" };
        caller.Start();
        var finished = ring.TakeRequest();
        ring.Respond(RingHarness.AnswerTo(finished));
        ring.JoinOrFail([caller], "first call");

        RingEvent? got = null;
        caller = new Thread(() => got = ring.Client.Call(RingHarness.ReadRequest(2))) { IsBackground = true, Name = "caller-2" };
        caller.Start();
        var current = ring.TakeRequest();
        Assert.NotEqual(finished.Id, current.Id);   // same call slot, next generation
        ring.Respond(new RingEvent
        {
            Type = RingEventType.MapBlockRsp, Id = finished.Id, Block = 1, Count = 1, ResponseFlags = MapResponseFlags.Error, Result = -22,
        });
        ring.Respond(RingHarness.AnswerTo(current));
        ring.JoinOrFail([caller], "second call");
        Assert.Equal(MapResponseFlags.Valid, got!.Value.ResponseFlags);
        Assert.Equal(2L, got.Value.Block);
    }
}
