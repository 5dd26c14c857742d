using System.Buffers.Binary;

namespace CowDisk.Format.Mapping;

/// <summary>
/// One persisted layer: the Data mapping of a block born at <see cref="TopBirth"/> holds only the subclusters in
/// <see cref="Mask"/>; the block's other subclusters read from the mapping it was written over (born at
/// <see cref="UnderBirth"/> in cluster <see cref="UnderCluster"/>), which a snapshot shares. Rows of one page
/// (512 blocks) are packed back to back. Little-endian, 32 bytes.
/// </summary>
public readonly record struct LayerRecord(int BlockInPage, uint TopBirth, ulong Mask, uint UnderBirth, long UnderCluster)
{
    public const int BlockOffset = 0;          // u32, block index relative to the page start
    public const int TopBirthOffset = 4;       // u32 epoch of the layered (top) mapping
    public const int MaskOffset = 8;           // u64, bit i: subcluster i is in the top mapping's cluster
    public const int UnderBirthOffset = 16;    // u32 epoch of the mapping underneath
    public const int ReservedOffset = 20;      // u32, zero
    public const int UnderClusterOffset = 24;  // u64 physical cluster of the mapping underneath
    public const int Size = 32;

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("layer record buffer too small", nameof(destination));
        BinaryPrimitives.WriteUInt32LittleEndian(destination[BlockOffset..], (uint)BlockInPage);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[TopBirthOffset..], TopBirth);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[MaskOffset..], Mask);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[UnderBirthOffset..], UnderBirth);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ReservedOffset..], 0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UnderClusterOffset..], (ulong)UnderCluster);
    }

    /// <summary>Parses one row; throws <see cref="FormatException"/> on values no writer produces.</summary>
    public static LayerRecord Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Size) throw new FormatException("truncated layer record");
        uint block = BinaryPrimitives.ReadUInt32LittleEndian(source[BlockOffset..]);
        uint top = BinaryPrimitives.ReadUInt32LittleEndian(source[TopBirthOffset..]);
        ulong mask = BinaryPrimitives.ReadUInt64LittleEndian(source[MaskOffset..]);
        uint under = BinaryPrimitives.ReadUInt32LittleEndian(source[UnderBirthOffset..]);
        ulong cluster = BinaryPrimitives.ReadUInt64LittleEndian(source[UnderClusterOffset..]);
        if (block > int.MaxValue) throw new FormatException($"layer record has a bad block {block}");
        if (mask == 0) throw new FormatException("layer record has an empty mask");
        if (top > MappingEntry.MaxEpoch || under >= top)
            throw new FormatException($"layer record epochs {top} over {under}: the layer must be born after what it covers");
        if (cluster == 0 || cluster > MappingEntry.MaxPhysicalCluster) throw new FormatException($"layer record points at bad physical cluster {cluster}");
        return new LayerRecord((int)block, top, mask, under, (long)cluster);
    }
}
