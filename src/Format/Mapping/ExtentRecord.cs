using System.Buffers.Binary;

namespace CowDisk.Format.Mapping;

/// <summary>
/// One persisted extent: a run of virtual blocks inside one map chunk with one source, consecutive
/// physical clusters (for Data) and one birth epoch. Chunks store their extents packed back to back.
/// Little-endian, 24 bytes.
/// </summary>
public readonly record struct ExtentRecord(int FirstBlockInChunk, int BlockCount, MappingSource Source, uint Epoch, long PhysicalCluster)
{
    public const int FirstBlockOffset = 0;   // u32, block index relative to the chunk start
    public const int BlockCountOffset = 4;   // u32, >= 1
    public const int SourceOffset = 8;       // u8: Zero or Data (Unallocated runs are not stored)
    public const int ReservedOffset = 9;     // 3 bytes, zero
    public const int EpochOffset = 12;       // u32
    public const int PhysicalOffset = 16;    // u64, first physical cluster (0 for Zero)
    public const int Size = 24;

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("extent buffer too small", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FirstBlockOffset..], (uint)FirstBlockInChunk);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BlockCountOffset..], (uint)BlockCount);
        destination[SourceOffset] = (byte)Source;
        destination.Slice(ReservedOffset, 3).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[EpochOffset..], Epoch);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[PhysicalOffset..], (ulong)PhysicalCluster);
    }

    /// <summary>Parses one record; throws <see cref="FormatException"/> on values no writer produces.</summary>
    public static ExtentRecord Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size) throw new FormatException("truncated extent record");
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(source[FirstBlockOffset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(source[BlockCountOffset..]);
        var kind = (MappingSource)source[SourceOffset];
        uint epoch = BinaryPrimitives.ReadUInt32LittleEndian(source[EpochOffset..]);
        ulong physical = BinaryPrimitives.ReadUInt64LittleEndian(source[PhysicalOffset..]);
        if (count == 0 || first > int.MaxValue || count > int.MaxValue || first + count > int.MaxValue)
            throw new FormatException($"extent record has a bad block range {first}+{count}");
        if (kind != MappingSource.Zero && kind != MappingSource.Data)
            throw new FormatException($"extent record has unknown source {(byte)kind}");
        if (kind == MappingSource.Data && (physical == 0 || physical + count - 1 > MappingEntry.MaxPhysicalCluster))
            throw new FormatException($"extent record points at bad physical cluster {physical}");
        if (kind == MappingSource.Zero && physical != 0)
            throw new FormatException("zero extent record has a physical cluster");
        if (epoch > MappingEntry.MaxEpoch) throw new FormatException($"extent record epoch {epoch} out of range");
        return new ExtentRecord((int)first, (int)count, kind, epoch, (long)physical);
    }
}
