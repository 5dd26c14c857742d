namespace CowDisk.Format.Mapping;

/// <summary>
/// The raw 64-bit form of a <see cref="Mapping"/> kept in the in-memory mapping tables:
/// bits 62-63 source, bit 61 shared, bits 40-60 epoch, bits 0-39 physical cluster. Zero means unallocated.
/// </summary>
public static class MappingEntry
{
    public const int SourceShift = 62;
    public const int SharedBit = 61;
    public const int EpochShift = 40;
    public const int EpochBits = 21;
    public const long PhysicalMask = (1L << 40) - 1;
    public const uint MaxEpoch = (1u << EpochBits) - 1;
    public const long MaxPhysicalCluster = PhysicalMask;

    public static ulong Encode(in Mapping mapping)
    {
        if ((ulong)mapping.PhysicalCluster > PhysicalMask) throw new ArgumentOutOfRangeException(nameof(mapping), "physical cluster out of range");
        if (mapping.Epoch > MaxEpoch) throw new ArgumentOutOfRangeException(nameof(mapping), "epoch out of range");
        return ((ulong)mapping.Source << SourceShift)
             | (mapping.Shared ? 1UL << SharedBit : 0)
             | ((ulong)mapping.Epoch << EpochShift)
             | (ulong)mapping.PhysicalCluster;
    }

    public static Mapping Decode(ulong raw) => new(
        (MappingSource)(raw >> SourceShift),
        (long)(raw & PhysicalMask),
        (uint)((raw >> EpochShift) & MaxEpoch),
        ((raw >> SharedBit) & 1) != 0);

    public static MappingSource SourceOf(ulong raw) => (MappingSource)(raw >> SourceShift);
    public static long PhysicalOf(ulong raw) => (long)(raw & PhysicalMask);
}
