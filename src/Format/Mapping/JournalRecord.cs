using System.Buffers.Binary;

namespace CowDisk.Format.Mapping;

/// <summary>
/// One run of the mapping journal: blocks [Block, Block + Count) now map to Source (Unallocated clears them),
/// born in Epoch, Data at consecutive clusters from PhysicalCluster. A commit stores the runs that changed since
/// the previous one; open applies them in order over the map chunks. Little-endian, 32 bytes.
/// </summary>
public readonly record struct JournalRecord(long Block, int Count, MappingSource Source, uint Epoch, long PhysicalCluster)
{
    public const int BlockOffset = 0;       // u64 first virtual block
    public const int CountOffset = 8;       // u32, >= 1
    public const int SourceOffset = 12;     // u8: Unallocated, Zero or Data
    public const int ReservedOffset = 13;   // 3 bytes, zero
    public const int EpochOffset = 16;      // u32
    public const int Reserved2Offset = 20;  // u32, zero
    public const int PhysicalOffset = 24;   // u64, first physical cluster (Data), else 0
    public const int Size = 32;

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("journal buffer too small", nameof(destination));
        BinaryPrimitives.WriteUInt64LittleEndian(destination[BlockOffset..], (ulong)Block);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[CountOffset..], (uint)Count);
        destination[SourceOffset] = (byte)Source;
        destination.Slice(ReservedOffset, 3).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[EpochOffset..], Epoch);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[Reserved2Offset..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[PhysicalOffset..], (ulong)PhysicalCluster);
    }

    /// <summary>Parses one record; throws <see cref="FormatException"/> on values no writer produces.</summary>
    public static JournalRecord Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size) throw new FormatException("truncated journal record");
        ulong block = BinaryPrimitives.ReadUInt64LittleEndian(source[BlockOffset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(source[CountOffset..]);
        var kind = (MappingSource)source[SourceOffset];
        uint epoch = BinaryPrimitives.ReadUInt32LittleEndian(source[EpochOffset..]);
        ulong physical = BinaryPrimitives.ReadUInt64LittleEndian(source[PhysicalOffset..]);
        if (count == 0 || count > int.MaxValue || block > (ulong)(long.MaxValue - count))
            throw new FormatException($"journal record has a bad block range {block}+{count}");
        if (kind is not (MappingSource.Unallocated or MappingSource.Zero or MappingSource.Data))
            throw new FormatException($"journal record has unknown source {(byte)kind}");
        if (kind == MappingSource.Data && (physical == 0 || physical + count - 1 > MappingEntry.MaxPhysicalCluster))
            throw new FormatException($"journal record points at bad physical cluster {physical}");
        if (kind != MappingSource.Data && physical != 0) throw new FormatException("journal record without data has a physical cluster");
        if (epoch > MappingEntry.MaxEpoch) throw new FormatException($"journal record epoch {epoch} out of range");
        return new JournalRecord((long)block, (int)count, kind, epoch, (long)physical);
    }
}
