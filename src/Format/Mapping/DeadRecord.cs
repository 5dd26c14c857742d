using System.Buffers.Binary;

namespace CowDisk.Format.Mapping;

/// <summary>
/// One persisted run of dead extents: mappings the live disk no longer has but a snapshot still reads
/// (born at <see cref="Birth"/>, dropped by the head at <see cref="Death"/>). A mapping dropped on several
/// branches (after a revert) has one row per death. Rows of one map chunk are packed back to back.
/// Little-endian, 32 bytes.
/// </summary>
public readonly record struct DeadRecord(int FirstBlockInChunk, int BlockCount, MappingSource Source, uint Birth, uint Death, long PhysicalCluster)
{
    public const int FirstBlockOffset = 0;   // u32, block index relative to the chunk start
    public const int BlockCountOffset = 4;   // u32, >= 1
    public const int SourceOffset = 8;       // u8: Zero or Data
    public const int ReservedOffset = 9;     // 3 bytes, zero
    public const int BirthOffset = 12;       // u32 epoch
    public const int DeathOffset = 16;       // u32 epoch, or 0: dropped only on branches since pruned (no death to record)
    public const int Reserved2Offset = 20;   // u32, zero
    public const int PhysicalOffset = 24;    // u64, first physical cluster (0 for Zero)
    public const int Size = 32;
    /// <summary>A death of 0: the extent was dropped only on branches that are gone; the tree alone says who reads it.</summary>
    public const uint NoDeath = 0;

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("dead record buffer too small", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FirstBlockOffset..], (uint)FirstBlockInChunk);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BlockCountOffset..], (uint)BlockCount);
        destination[SourceOffset] = (byte)Source;
        destination.Slice(ReservedOffset, 3).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BirthOffset..], Birth);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[DeathOffset..], Death);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[Reserved2Offset..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[PhysicalOffset..], (ulong)PhysicalCluster);
    }

    /// <summary>Parses one row; throws <see cref="FormatException"/> on values no writer produces.</summary>
    public static DeadRecord Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size) throw new FormatException("truncated dead record");
        uint first = BinaryPrimitives.ReadUInt32LittleEndian(source[FirstBlockOffset..]);
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(source[BlockCountOffset..]);
        var kind = (MappingSource)source[SourceOffset];
        uint birth = BinaryPrimitives.ReadUInt32LittleEndian(source[BirthOffset..]);
        uint death = BinaryPrimitives.ReadUInt32LittleEndian(source[DeathOffset..]);
        ulong physical = BinaryPrimitives.ReadUInt64LittleEndian(source[PhysicalOffset..]);
        if (count == 0 || first > int.MaxValue || count > int.MaxValue || first + count > int.MaxValue)
            throw new FormatException($"dead record has a bad block range {first}+{count}");
        if (kind != MappingSource.Zero && kind != MappingSource.Data)
            throw new FormatException($"dead record has unknown source {(byte)kind}");
        if (kind == MappingSource.Data && (physical == 0 || physical + count - 1 > MappingEntry.MaxPhysicalCluster || physical + count - 1 < physical))
            throw new FormatException($"dead record points at bad physical cluster {physical}");
        if (kind == MappingSource.Zero && physical != 0)
            throw new FormatException("zero dead record has a physical cluster");
        if (birth > MappingEntry.MaxEpoch || death > MappingEntry.MaxEpoch)
            throw new FormatException($"dead record epochs {birth}/{death} out of range");
        if (death != NoDeath && death <= birth) throw new FormatException($"dead record dies at epoch {death}, not after its birth {birth}");
        return new DeadRecord((int)first, (int)count, kind, birth, death, (long)physical);
    }
}
