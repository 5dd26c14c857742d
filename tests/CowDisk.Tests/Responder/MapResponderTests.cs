using CowDisk.Engine.Devices;
using CowDisk.Format.Ring;
using Xunit;

namespace CowDisk.Tests.Responder;

public class MapResponderTests
{
    [Fact]
    public void A_stopped_responder_hangs_up_its_response_bell()
    {
        using var r = new ResponderHarness();
        Assert.False(r.ResponseBell.IsClosed);
        r.Responder.Dispose();
        Assert.True(r.ResponseBell.IsClosed);
        Assert.Null(r.Responder.Fatal);
    }

    /// <summary>
    /// An exception outside request handling (here: its own doorbell disposed under it, so its next sleep throws) ends the responder's
    /// thread: it must not take the process with it, and must tell the target it is gone.
    /// </summary>
    [Fact]
    public void A_responder_whose_loop_throws_hangs_up_instead_of_killing_the_process()
    {
        using var r = new ResponderHarness();
        r.BreakRequestBell();
        r.WaitForHangUp();
        Assert.IsType<ObjectDisposedException>(r.Responder.Fatal);
    }

    /// <summary>
    /// A request slot of an unknown type, or of a type only the responder sends, gets an ERROR answer with
    /// EINVAL and its id; the responder neither dies nor turns fatal, and answers the next request normally.
    /// </summary>
    [Fact]
    public void A_malformed_request_is_answered_with_EINVAL_and_serving_goes_on()
    {
        using var r = new ResponderHarness();
        r.Send(new RingEvent { Type = (RingEventType)99, Id = 7, Block = 3, Count = 1 });
        r.Send(new RingEvent { Type = RingEventType.Invalidate, Id = 8, Block = 3, Count = 1 });
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Read, Id = 9, Block = 3, Count = 1 });

        foreach (ulong id in new ulong[] { 7, 8 })
        {
            var rsp = r.Receive();
            Assert.Equal(RingEventType.MapBlockRsp, rsp.Type);
            Assert.Equal(id, rsp.Id);
            Assert.Equal(MapResponseFlags.Error, rsp.ResponseFlags);
            Assert.Equal(-22, rsp.Result);
        }
        var answer = r.Receive();
        Assert.Equal(9UL, answer.Id);
        Assert.Equal(MapResponseFlags.Zero, answer.ResponseFlags);   // unallocated, no base: reads as zeros
        Assert.Equal((3L, 1), (answer.Block, answer.Count));
        Assert.Null(r.Responder.Fatal);
        Assert.False(r.ResponseBell.IsClosed);
    }

    /// <summary>
    /// While an extent awaits its DONE, a malformed slot may have been that DONE: an acknowledged write whose
    /// mapping is lost. The responder answers it, then turns fatal: the deferred write to those blocks and every
    /// later flush fail instead of waiting for ever or claiming durability.
    /// </summary>
    [Fact]
    public void A_malformed_slot_while_an_extent_awaits_its_DONE_makes_the_responder_fatal()
    {
        using var r = new ResponderHarness(writable: true);
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Write, Id = 1, Block = 3, Count = 1 });
        var allocating = r.Receive();
        Assert.Equal(MapResponseFlags.Sync, allocating.ResponseFlags & MapResponseFlags.Sync);
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Write, Id = 2, Block = 3, Count = 1 });   // deferred
        r.Send(new RingEvent { Type = (RingEventType)99, Id = 1, Block = 3, Count = 1 });   // the DONE, garbled

        var rejected = r.Receive();
        Assert.Equal((1UL, -22), (rejected.Id, rejected.Result));
        var deferred = r.Receive();
        Assert.Equal((2UL, MapResponseFlags.Error, -5), (deferred.Id, deferred.ResponseFlags, deferred.Result));
        r.Send(new RingEvent { Type = RingEventType.FlushReq, Id = 3 });
        var flush = r.Receive();
        Assert.Equal((RingEventType.FlushRsp, 3UL, -5), (flush.Type, flush.Id, flush.Result));
        Assert.IsType<CorruptImageException>(r.Responder.Fatal);
    }
}
