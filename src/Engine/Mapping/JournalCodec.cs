using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>The mapping journal: the runs of blocks that changed since the last commit, packed as <see cref="JournalRecord"/>s.</summary>
internal static class JournalCodec
{
    /// <summary>Sorts and merges the changed ranges, then packs the table's current entries over them as runs.</summary>
    public static byte[] Encode(MappingTable table, List<(long Block, long Count)> changed)
    {
        changed.Sort();
        var records = new List<JournalRecord>();
        long covered = 0;   // end of what is already encoded
        foreach (var (first, count) in changed)
        {
            long b = Math.Max(first, covered), end = Math.Min(first + count, table.BlockCount);
            while (b < end)
            {
                var m = table.GetMapping(b);
                int n = 1;
                while (b + n < end && n < int.MaxValue && Continues(m, table.GetMapping(b + n), n)) n++;
                records.Add(new JournalRecord(b, n, m.Source, m.Source == MappingSource.Unallocated ? 0 : m.Epoch, m.IsData ? m.PhysicalCluster : 0));
                b += n;
            }
            covered = Math.Max(covered, end);
        }
        var bytes = new byte[records.Count * JournalRecord.Size];
        for (int i = 0; i < records.Count; i++) records[i].Write(bytes.AsSpan(i * JournalRecord.Size));
        return bytes;
    }

    private static bool Continues(in Format.Mapping.Mapping first, in Format.Mapping.Mapping next, int distance) =>
        next.Source == first.Source && (first.Source == MappingSource.Unallocated || next.Epoch == first.Epoch) &&
        (first.Source != MappingSource.Data || next.PhysicalCluster == first.PhysicalCluster + distance);

    /// <summary>Applies one commit's records over the table; throws CorruptImageException on bad bytes. Returns the chunks touched.</summary>
    public static IEnumerable<long> Apply(MappingTable table, long sequence, ReadOnlySpan<byte> packed)
    {
        if (packed.Length % JournalRecord.Size != 0)
            throw new Devices.CorruptImageException($"journal entry {sequence} has {packed.Length} bytes, not a whole number of records");
        var touched = new HashSet<long>();
        for (int r = 0; r < packed.Length / JournalRecord.Size; r++)
        {
            JournalRecord rec;
            try { rec = JournalRecord.Read(packed.Slice(r * JournalRecord.Size)); }
            catch (FormatException e) { throw new Devices.CorruptImageException($"journal entry {sequence}: {e.Message}"); }
            if (rec.Block + rec.Count > table.BlockCount)
                throw new Devices.CorruptImageException($"journal entry {sequence}: run {rec.Block}+{rec.Count} lies outside the disk");
            for (long b = rec.Block; b < rec.Block + rec.Count;)
            {
                long chunk = MappingTable.ChunkOf(b);
                long chunkEnd = Math.Min(rec.Block + rec.Count, MappingTable.ChunkStart(chunk + 1));
                touched.Add(chunk);
                if (rec.Source != MappingSource.Data && b == MappingTable.ChunkStart(chunk) && chunkEnd - b == MappingTable.ChunkBlocks)
                {
                    // A whole chunk of zeros or nothing: no per-block memory.
                    table.SetChunk(chunk, rec.Source == MappingSource.Unallocated ? 0 : MappingEntry.Encode(new Format.Mapping.Mapping(rec.Source, 0, rec.Epoch)));
                    b = chunkEnd;
                    continue;
                }
                for (; b < chunkEnd; b++)
                    table.Set(b, rec.Source == MappingSource.Unallocated ? 0
                        : MappingEntry.Encode(new Format.Mapping.Mapping(rec.Source, rec.Source == MappingSource.Data ? rec.PhysicalCluster + (b - rec.Block) : 0, rec.Epoch)));
            }
        }
        return touched;
    }
}
