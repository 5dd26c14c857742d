using CowDisk.Format.Ring;
using Xunit;

namespace CowDisk.Tests.Responder;

/// <summary>
/// Map requests the target would never send: a negative block, no blocks, a range that starts past the end.
/// Each gets an ERROR answer with EIO and its own id; the responder stays healthy and serves what follows.
/// A range that starts inside the disk and runs past its end is answered for the blocks inside.
/// </summary>
public class MapRequestRangeTests
{
    public static TheoryData<MapRequestFlags> Kinds => new() { MapRequestFlags.Read, MapRequestFlags.Write, MapRequestFlags.Zero };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Requests_outside_the_disk_get_EIO_and_the_responder_serves_on(MapRequestFlags kind)
    {
        using var r = new ResponderHarness(writable: true);
        long blocks = r.Geometry.BlockCount;
        var bad = new (long Block, int Count)[]
        {
            (-1, 1), (-1, 2), (-4096, 4097), (long.MinValue, 1),
            (0, 0), (5, 0), (5, -1), (0, int.MinValue),
            (blocks, 1), (blocks + 1, 1), (blocks, int.MaxValue), (long.MaxValue, 1),
            // Past the end by 2^32 - 1 blocks: the distance truncated to 32 bits would read as one block.
            (blocks + (1L << 32) - 1, 1), (blocks + (1L << 32) - 1, 5),
        };
        ulong id = 100;
        foreach (var (block, count) in bad)
        {
            id++;
            r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = kind, Id = id, Block = block, Count = count });
            var rsp = r.Receive();
            Assert.True((RingEventType.MapBlockRsp, id, MapResponseFlags.Error, -5) == (rsp.Type, rsp.Id, rsp.ResponseFlags, rsp.Result),
                $"{kind} {block}+{count}: answered {rsp.Type} id {rsp.Id} {rsp.ResponseFlags} {rsp.Result}");
            Assert.Null(r.Responder.Fatal);
        }

        // Still serving, and nothing changed: a write, its DONE and a flush go through as on a fresh responder.
        var write = r.Write(1, blocks - 1);
        Assert.Equal(1L, write.DeviceBlock);
        Assert.Equal(0, r.Flush(2));
        Assert.Equal(MapResponseFlags.Valid, r.MapRead(3, blocks - 1).ResponseFlags);
        var report = r.CheckInvariants();
        Assert.Equal((1L, 0L, 0L), (report.MappedClusters, report.PendingFreeClusters, report.FreeClusters));
        Assert.Null(r.Responder.Fatal);
        Assert.False(r.ResponseBell.IsClosed);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_range_running_past_the_end_is_answered_for_the_blocks_inside(MapRequestFlags kind)
    {
        using var r = new ResponderHarness(writable: true);
        long blocks = r.Geometry.BlockCount;
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = kind, Id = 1, Block = blocks - 3, Count = 10 });
        var rsp = r.Receive();
        if (kind == MapRequestFlags.Zero)
        {
            Assert.Equal((RingEventType.Invalidate, blocks - 3, 3), (rsp.Type, rsp.Block, rsp.Count));
            rsp = r.Receive();
        }
        Assert.Equal((RingEventType.MapBlockRsp, 1UL, 0), (rsp.Type, rsp.Id, rsp.Result));
        Assert.Equal((blocks - 3, 3), (rsp.Block, rsp.Count));
        if (kind == MapRequestFlags.Write) r.Done(rsp);
        Assert.Equal(0, r.Flush(2));
        Assert.Equal(kind == MapRequestFlags.Write ? 3L : 0L, r.CheckInvariants().MappedClusters);
        Assert.Null(r.Responder.Fatal);
    }
}
