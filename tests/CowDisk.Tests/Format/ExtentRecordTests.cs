using System.Buffers.Binary;
using CowDisk.Format.Mapping;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Format;

public class ExtentRecordTests
{
    private static readonly Gen<ExtentRecord> Records =
        from first in Gen.Choose(0, 4095)
        from count in Gen.Choose(1, 4096)
        from data in Gen.Elements(true, false)
        from epoch in Gen.Choose(0, (int)MappingEntry.MaxEpoch)
        from phys in Gen.Choose(1, int.MaxValue)
        select new ExtentRecord(first, count, data ? MappingSource.Data : MappingSource.Zero, (uint)epoch, data ? phys : 0);

    [Fact]
    public void Round_trips_at_non_zero_offsets() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(Records.ToArbitrary(), Gen.Choose(0, 40).ToArbitrary(), (rec, offset) =>
        {
            var buffer = new byte[offset + ExtentRecord.Size + 5];
            rec.Write(buffer.AsSpan(offset));
            return ExtentRecord.Read(buffer.AsSpan(offset)) == rec;
        }));

    [Fact]
    public void Rejects_zero_count()
    {
        var buffer = new byte[ExtentRecord.Size];
        new ExtentRecord(0, 1, MappingSource.Data, 0, 5).Write(buffer);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(ExtentRecord.BlockCountOffset), 0);
        Assert.Throws<FormatException>(() => ExtentRecord.Read(buffer));
    }

    [Theory]
    [InlineData(0)]   // Unallocated runs are never stored
    [InlineData(3)]   // Backing is a cache-only source
    [InlineData(200)]
    public void Rejects_unknown_source(byte source)
    {
        var buffer = new byte[ExtentRecord.Size];
        new ExtentRecord(0, 1, MappingSource.Data, 0, 5).Write(buffer);
        buffer[ExtentRecord.SourceOffset] = source;
        Assert.Throws<FormatException>(() => ExtentRecord.Read(buffer));
    }

    [Fact]
    public void Rejects_data_extent_at_header_cluster() =>
        Assert.Throws<FormatException>(() =>
        {
            var buffer = new byte[ExtentRecord.Size];
            new ExtentRecord(0, 1, MappingSource.Data, 0, 0).Write(buffer);
            ExtentRecord.Read(buffer);
        });

    [Fact]
    public void Rejects_truncated_record() =>
        Assert.Throws<FormatException>(() => ExtentRecord.Read(new byte[ExtentRecord.Size - 1]));

    [Fact]
    public void Mapping_entries_round_trip() =>
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(300), Prop.ForAll(
            (from source in Gen.Elements(MappingSource.Unallocated, MappingSource.Zero, MappingSource.Data, MappingSource.Backing)
             from phys in Gen.Choose(0, int.MaxValue)
             from epoch in Gen.Choose(0, (int)MappingEntry.MaxEpoch)
             from shared in Gen.Elements(true, false)
             select new CowDisk.Format.Mapping.Mapping(source, (long)phys << 8, (uint)epoch, shared)).ToArbitrary(),
            m => MappingEntry.Decode(MappingEntry.Encode(m)) == m));
}
