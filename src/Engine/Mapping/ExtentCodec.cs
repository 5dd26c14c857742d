using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>Turns one chunk of a <see cref="MappingTable"/> into packed <see cref="ExtentRecord"/>s and back.</summary>
internal static class ExtentCodec
{
    /// <summary>Packs the chunk's mapped runs; returns null when the chunk maps nothing.</summary>
    public static byte[]? Encode(MappingTable table, long chunk)
    {
        var entries = table.ChunkEntries(chunk);
        int runs = ForEachRun(entries, default);   // first pass counts, so the buffer is allocated once, exactly
        if (runs == 0) return null;
        var bytes = new byte[runs * ExtentRecord.Size];
        ForEachRun(entries, bytes);
        return bytes;
    }

    /// <summary>Walks the mapped runs of a chunk, writing each as a record into output when it is not empty.</summary>
    private static int ForEachRun(ReadOnlySpan<ulong> entries, Span<byte> output)
    {
        int runs = 0, i = 0;
        while (i < entries.Length)
        {
            var m = MappingEntry.Decode(entries[i]);
            if (m.Source == MappingSource.Unallocated) { i++; continue; }
            int start = i++;
            while (i < entries.Length && Continues(m, MappingEntry.Decode(entries[i]), i - start)) i++;
            if (!output.IsEmpty)
                new ExtentRecord(start, i - start, m.Source, m.Epoch, m.PhysicalCluster).Write(output[(runs * ExtentRecord.Size)..]);
            runs++;
        }
        return runs;
    }

    private static bool Continues(in Format.Mapping.Mapping first, in Format.Mapping.Mapping next, int distance) =>
        next.Source == first.Source && next.Epoch == first.Epoch &&
        (first.Source != MappingSource.Data || next.PhysicalCluster == first.PhysicalCluster + distance);

    /// <summary>Loads packed records of one chunk into the table; throws CorruptImageException on bad bytes.</summary>
    public static int Decode(MappingTable table, long chunk, ReadOnlySpan<byte> packed)
    {
        if (packed.Length % ExtentRecord.Size != 0)
            throw new Devices.CorruptImageException($"map chunk {chunk} has {packed.Length} bytes, not a whole number of extents");
        long chunkStart = MappingTable.ChunkStart(chunk);
        int count = packed.Length / ExtentRecord.Size;
        for (int r = 0; r < count; r++)
        {
            ExtentRecord rec;
            try { rec = ExtentRecord.Read(packed.Slice(r * ExtentRecord.Size)); }
            catch (FormatException e) { throw new Devices.CorruptImageException($"map chunk {chunk}: {e.Message}"); }
            if (rec.FirstBlockInChunk + rec.BlockCount > MappingTable.ChunkBlocks || chunkStart + rec.FirstBlockInChunk + rec.BlockCount > table.BlockCount)
                throw new Devices.CorruptImageException($"map chunk {chunk}: extent {rec.FirstBlockInChunk}+{rec.BlockCount} lies outside the chunk or the disk");
            if (rec.Source == MappingSource.Zero && rec.BlockCount == MappingTable.ChunkBlocks && count == 1 && table.IsUniform(chunk, out ulong none) && none == 0)
            {
                table.SetChunk(chunk, MappingEntry.Encode(new Format.Mapping.Mapping(MappingSource.Zero, 0, rec.Epoch)));   // a zeroed chunk: no per-block memory
                continue;
            }
            for (int i = 0; i < rec.BlockCount; i++)
            {
                long block = chunkStart + rec.FirstBlockInChunk + i;
                if (table.Get(block) != 0)
                    throw new Devices.CorruptImageException($"map chunk {chunk}: block {block} mapped twice");
                long phys = rec.Source == MappingSource.Data ? rec.PhysicalCluster + i : 0;
                table.Set(block, MappingEntry.Encode(new Format.Mapping.Mapping(rec.Source, phys, rec.Epoch)));
            }
        }
        return count;
    }
}
