using System.Buffers.Binary;
using CowDisk.Format.Ring;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Format;

public class RingEventTests
{
    private static readonly Gen<RingEvent> Events =
        from type in Gen.Choose(1, 8)
        from flags in Gen.Choose(0, ushort.MaxValue)
        from id in ArbMap.Default.GeneratorFor<ulong>()
        from block in ArbMap.Default.GeneratorFor<long>()
        from count in ArbMap.Default.GeneratorFor<int>()
        from result in ArbMap.Default.GeneratorFor<int>()
        from dev in Gen.Choose(0, ushort.MaxValue)
        from srcDev in Gen.Choose(0, ushort.MaxValue)
        from devBlock in ArbMap.Default.GeneratorFor<long>()
        from srcBlock in ArbMap.Default.GeneratorFor<long>()
        from mask in ArbMap.Default.GeneratorFor<ulong>()
        select new RingEvent
        {
            Type = (RingEventType)type, Flags = (ushort)flags, Id = id, Block = block, Count = count, Result = result,
            Device = (ushort)dev, SourceDevice = (ushort)srcDev, DeviceBlock = devBlock, SourceBlock = srcBlock, Mask = mask,
        };

    [Fact]
    public void Round_trips_and_leaves_the_status_word_alone() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Events.ToArbitrary(), Gen.Choose(0, 70).ToArbitrary(), (ev, offset) =>
        {
            var buffer = new byte[offset + RingEvent.Size];
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), 0xfeedface);
            ev.Write(buffer.AsSpan(offset));
            return RingEvent.Read(buffer.AsSpan(offset)) == ev
                && BinaryPrimitives.ReadUInt32LittleEndian(buffer.AsSpan(offset)) == 0xfeedface;
        }));

    [Theory]
    [InlineData(0)]
    [InlineData(9)]
    [InlineData(0xffff)]
    public void Rejects_unknown_type(ushort type)
    {
        var buffer = new byte[RingEvent.Size];
        BinaryPrimitives.WriteUInt16LittleEndian(buffer.AsSpan(RingEvent.TypeOffset), type);
        Assert.Throws<FormatException>(() => RingEvent.Read(buffer));
    }

    [Fact]
    public void TryRead_reads_an_unknown_type_with_its_other_fields()
    {
        var buffer = new byte[RingEvent.Size];
        new RingEvent { Type = (RingEventType)9, Id = 42, Block = 5, Count = 2 }.Write(buffer);
        Assert.False(RingEvent.TryRead(buffer, out var ev));
        Assert.Equal(9, (ushort)ev.Type);
        Assert.Equal(42UL, ev.Id);
        Assert.Equal((5L, 2), (ev.Block, ev.Count));
        new RingEvent { Type = RingEventType.FlushReq, Id = 43 }.Write(buffer);
        Assert.True(RingEvent.TryRead(buffer, out ev));
        Assert.Equal(43UL, ev.Id);
    }

    [Fact]
    public void Rejects_truncated_slot() => Assert.Throws<FormatException>(() => RingEvent.Read(new byte[RingEvent.Size - 1]));

    [Fact]
    public void Slots_tile_pages_exactly()
    {
        Assert.Equal(0, RingLayout.PageSize % RingEvent.Size);
        var layout = new RingLayout(256);
        Assert.Equal(0, layout.RequestRingOffset % RingLayout.PageSize);
        Assert.Equal(0, layout.ResponseRingOffset % RingLayout.PageSize);
    }

    [Fact]
    public void Ring_header_round_trips_and_rejects_garbage()
    {
        var page = new byte[RingLayout.PageSize + 3];
        new RingLayout(1024).WriteHeader(page.AsSpan(3));
        Assert.Equal(1024, RingLayout.ReadHeader(page.AsSpan(3)).SlotCount);
        BinaryPrimitives.WriteUInt32LittleEndian(page.AsSpan(3 + RingLayout.SlotCountOffset), 1000);   // not a power of two
        Assert.Throws<FormatException>(() => RingLayout.ReadHeader(page.AsSpan(3)));
        Assert.Throws<FormatException>(() => RingLayout.ReadHeader(new byte[RingLayout.PageSize]));
    }
}
