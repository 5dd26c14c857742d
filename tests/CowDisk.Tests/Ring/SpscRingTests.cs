using CowDisk.Engine.Ring;
using CowDisk.Format.Ring;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Ring;

public class SpscRingTests
{
    private static RingEvent Numbered(ulong n) => new() { Type = RingEventType.MapBlockReq, Id = n, Block = (long)n * 3, Count = 1 };

    /// <summary>Random produce/consume bursts against a queue model: FIFO, refusal exactly when full.</summary>
    [Fact]
    public void Matches_a_bounded_queue_model_under_random_interleavings() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), Prop.ForAll(
            Gen.Elements(64, 128).ToArbitrary(),
            Gen.ListOf(Gen.Choose(-200, 200)).ToArbitrary(),
            (slots, bursts) =>
            {
                using var region = new SharedRegion(slots);
                var ring = region.RequestRing;
                var model = new Queue<ulong>();
                ulong next = 0;
                foreach (int burst in bursts)
                {
                    for (int i = 0; i < Math.Abs(burst); i++)
                    {
                        if (burst > 0)
                        {
                            bool accepted = ring.TryProduce(Numbered(next));
                            if (accepted != (model.Count < slots)) return false;   // refuses exactly when full
                            if (accepted) model.Enqueue(next++);
                        }
                        else
                        {
                            bool got = ring.TryConsume(out var ev, out bool malformed);
                            if (got != (model.Count > 0) || malformed) return false;
                            if (got && (ev.Id != model.Dequeue() || ev.Block != (long)ev.Id * 3)) return false;
                        }
                    }
                }
                return true;
            }));

    [Theory]
    [InlineData(64, 200_000)]
    [InlineData(1024, 200_000)]
    public void Threads_lose_duplicate_or_reorder_nothing(int slots, int events)
    {
        using var region = new SharedRegion(slots);
        var ring = region.RequestRing;
        using var bell = new Doorbell();
        int fullCount = 0;
        var producer = TestThread.Start("producer", () =>
        {
            for (ulong i = 0; i < (ulong)events; i++)
            {
                while (!ring.TryProduce(Numbered(i))) { fullCount++; bell.Ring(); Thread.Yield(); }
                if ((i & 15) == 0) bell.Ring();   // batch wakes
            }
            bell.Ring();
        });
        ulong expected = 0;
        while (expected < (ulong)events)
        {
            if (ring.TryConsume(out var ev, out bool malformed))
            {
                Assert.False(malformed);
                Assert.Equal(expected, ev.Id);
                Assert.Equal((long)expected * 3, ev.Block);
                expected++;
            }
            else bell.Wait(10);
        }
        producer.Join();
        Assert.False(ring.TryConsume(out _, out _));
        Assert.True(fullCount > 0 || slots > 64, "a 64-slot ring under a fast producer should have filled at least once");
    }

    /// <summary>A slot of an unknown type is taken like any other: cleared, reported with its id, and the ring goes on.</summary>
    [Fact]
    public void A_malformed_slot_is_taken_cleared_and_reported()
    {
        using var region = new SharedRegion(64);
        var ring = region.RequestRing;
        Assert.True(ring.TryProduce(new RingEvent { Type = (RingEventType)99, Id = 42 }));
        Assert.True(ring.TryProduce(Numbered(1)));

        Assert.True(ring.TryConsume(out var bad, out bool malformed));
        Assert.True(malformed);
        Assert.Equal(42UL, bad.Id);
        Assert.True(ring.TryConsume(out var next, out malformed));
        Assert.False(malformed);
        Assert.Equal(1UL, next.Id);
        Assert.False(ring.TryConsume(out _, out _));
        for (int i = 0; i < ring.SlotCount; i++) Assert.True(ring.TryProduce(Numbered((ulong)i)), "the malformed slot was not handed back");
    }

    /// <summary>A batch goes in whole or not at all, in order, across the wrap of the ring.</summary>
    [Fact]
    public void A_batch_is_produced_whole_or_not_at_all()
    {
        using var region = new SharedRegion(64);
        var ring = region.RequestRing;
        for (int i = 0; i < ring.SlotCount - 2; i++) Assert.True(ring.TryProduce(Numbered((ulong)i)));
        Assert.False(ring.TryProduceAll(new[] { Numbered(100), Numbered(101), Numbered(102) }));   // two free slots
        for (int i = 0; i < ring.SlotCount - 3; i++) Assert.True(ring.TryConsume(out _, out _));  // one left, the rest free
        Assert.True(ring.TryProduceAll(new[] { Numbered(100), Numbered(101), Numbered(102) }));   // wraps past slot 0

        var seen = new List<ulong>();
        while (ring.TryConsume(out var ev, out _)) seen.Add(ev.Id);
        Assert.Equal(new ulong[] { (ulong)ring.SlotCount - 3, 100, 101, 102 }, seen);
    }
}
