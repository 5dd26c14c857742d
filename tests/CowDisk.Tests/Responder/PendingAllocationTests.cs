using CowDisk.Format.Ring;
using Xunit;

namespace CowDisk.Tests.Responder;

/// <summary>
/// A block whose new extent is being written (handed out, its MAP_BLOCK_DONE not yet in) belongs to that
/// writer: a discard or a multi-block write that overlaps it must neither take it over nor be answered past it.
/// The test sits in the target's seat; a read of an unrelated block, sent after the request under test and
/// answered in ring order, shows whether that request was answered or is waiting.
/// </summary>
public class PendingAllocationTests
{
    [Theory]
    [InlineData(0)]   // the first block of the discard
    [InlineData(2)]   // inside it
    [InlineData(5)]   // its last block
    public void A_discard_overlapping_a_block_being_allocated_waits_for_its_DONE_and_then_wins(int position)
    {
        using var r = new ResponderHarness(writable: true);
        const long first = 10;
        const int count = 6;
        long pending = first + position;
        var write = r.MapWrite(1, pending, 1);
        Assert.True((write.ResponseFlags & MapResponseFlags.Sync) != 0);

        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Zero, Id = 2, Block = first, Count = count });
        Assert.Equal(MapResponseFlags.Zero, r.MapRead(3, 100).ResponseFlags);   // answered first: the discard waits

        r.Done(write);
        var invalidate = r.Receive();
        Assert.Equal((RingEventType.Invalidate, first, count), (invalidate.Type, invalidate.Block, invalidate.Count));
        var discard = r.Receive();
        Assert.Equal((RingEventType.MapBlockRsp, 2UL, MapResponseFlags.Zero, count), (discard.Type, discard.Id, discard.ResponseFlags, discard.Count));

        // The discard came after the write: the block reads as zeros, and its extent is freed, not leaked.
        Assert.Equal(MapResponseFlags.Zero, r.MapRead(4, pending).ResponseFlags);
        Assert.Equal(0, r.Flush(5));
        var report = r.CheckInvariants();
        Assert.Equal((0L, 0L, 1L), (report.MappedClusters, report.PendingFreeClusters, report.FreeClusters));
        Assert.False(r.Allocator.IsUsed(write.DeviceBlock));
        Assert.Null(r.Responder.Fatal);
    }

    [Fact]
    public void A_multi_block_write_stops_before_a_block_another_writer_is_allocating()
    {
        using var r = new ResponderHarness(writable: true);
        var other = r.MapWrite(1, 10, 1);                 // block 10: cluster 1, being written
        Assert.Equal(1L, other.DeviceBlock);

        var mine = r.MapWrite(2, 8, 5);                   // 8..12 asked: only 8 and 9 are answered
        Assert.Equal((8L, 2), (mine.Block, mine.Count));
        Assert.True((mine.ResponseFlags & MapResponseFlags.Sync) != 0);
        Assert.Equal(2L, mine.DeviceBlock);
        r.Done(mine);

        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Write, Id = 3, Block = 10, Count = 3 });
        Assert.Equal(MapResponseFlags.Zero, r.MapRead(4, 100).ResponseFlags);   // answered first: the write to 10 waits

        r.Done(other);
        var rest = r.Receive();                            // now block 10 has data: overwritten in place
        Assert.Equal((RingEventType.MapBlockRsp, 3UL, 10L, 1), (rest.Type, rest.Id, rest.Block, rest.Count));
        Assert.Equal(MapResponseFlags.Valid, rest.ResponseFlags);
        Assert.Equal(1L, rest.DeviceBlock);
        var tail = r.Write(5, 11, 2);
        Assert.Equal(2, tail.Count);

        Assert.Equal(0, r.Flush(6));
        for (long b = 8; b <= 12; b++)
        {
            var read = r.MapRead(10 + (ulong)b, b);
            Assert.Equal(MapResponseFlags.Valid, read.ResponseFlags);
        }
        Assert.Equal(5L, r.CheckInvariants().MappedClusters);
        Assert.Null(r.Responder.Fatal);
    }

    [Fact]
    public void A_failed_write_of_a_pending_block_frees_its_cluster_at_once_and_lets_the_waiting_discard_through()
    {
        using var r = new ResponderHarness(writable: true);
        var write = r.MapWrite(1, 4, 2);
        Assert.Equal((1L, 2), (write.DeviceBlock, write.Count));
        r.Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Zero, Id = 2, Block = 0, Count = 8 });
        Assert.Equal(MapResponseFlags.Zero, r.MapRead(3, 100).ResponseFlags);
        r.Done(write, result: -5);
        Assert.Equal(RingEventType.Invalidate, r.Receive().Type);
        Assert.Equal(2UL, r.Receive().Id);
        // Never referenced: reusable without waiting for a flush.
        Assert.False(r.Allocator.IsUsed(1));
        Assert.False(r.Allocator.IsUsed(2));
        Assert.Equal(1L, r.Write(4, 20).DeviceBlock);
        Assert.Equal(0, r.Flush(5));
        Assert.Equal((1L, 0L, 1L), (r.CheckInvariants().MappedClusters, r.CheckInvariants().PendingFreeClusters, r.CheckInvariants().FreeClusters));
    }
}
