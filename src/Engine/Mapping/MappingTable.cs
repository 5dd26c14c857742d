using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>
/// Virtual block → raw <see cref="MappingEntry"/>, as a two-level table of 4096-entry chunks allocated on
/// first use (qcow2's L1/L2 shape): O(1) lookups, nothing allocated per request, memory only where mapped.
/// One writer thread; readers on other threads see whole 64-bit entries.
/// </summary>
internal sealed class MappingTable
{
    public const int ChunkShift = 12;
    public const int ChunkBlocks = 1 << ChunkShift;
    private const int ChunkMask = ChunkBlocks - 1;

    private readonly ulong[]?[] _chunks;
    // Highest birth epoch ever set in each chunk (never lowered): lets a revert or a diff skip chunks unchanged since an epoch.
    private readonly uint[] _maxEpoch;

    public long BlockCount { get; }
    public int ChunkCount => _chunks.Length;

    public MappingTable(long blockCount)
    {
        BlockCount = blockCount;
        _chunks = new ulong[]?[(blockCount + ChunkMask) >> ChunkShift];
        _maxEpoch = new uint[_chunks.Length];
    }

    public static long ChunkOf(long block) => block >> ChunkShift;
    public static long ChunkStart(long chunk) => chunk << ChunkShift;

    public ulong Get(long block)
    {
        var chunk = Volatile.Read(ref _chunks[block >> ChunkShift]);
        return chunk is null ? 0 : Volatile.Read(ref chunk[block & ChunkMask]);
    }

    public Format.Mapping.Mapping GetMapping(long block) => MappingEntry.Decode(Get(block));

    public void Set(long block, ulong raw)
    {
        ref var slot = ref _chunks[block >> ChunkShift];
        var chunk = slot;
        if (chunk is null)
        {
            if (raw == 0) return;
            chunk = new ulong[ChunkBlocks];
            Volatile.Write(ref slot, chunk);
        }
        Volatile.Write(ref chunk[block & ChunkMask], raw);
        uint epoch = (uint)((raw >> MappingEntry.EpochShift) & MappingEntry.MaxEpoch);
        ref uint max = ref _maxEpoch[block >> ChunkShift];
        if (epoch > max) max = epoch;
    }

    /// <summary>Chunks that may hold a mapping born after the given epoch.</summary>
    public IEnumerable<long> ChunksWithEpochAbove(uint epoch)
    {
        for (long c = 0; c < _chunks.Length; c++)
            if (_chunks[c] is not null && _maxEpoch[c] > epoch) yield return c;
    }

    /// <summary>The raw entries of one chunk, or null if nothing in it was ever set.</summary>
    public ReadOnlySpan<ulong> ChunkEntries(long chunk) => _chunks[chunk];

    /// <summary>Every block mapped to a data cluster, in block order (open and checks, not the I/O path).</summary>
    public IEnumerable<(long Block, long Physical)> DataMappings()
    {
        foreach (long chunk in PopulatedChunks())
        {
            var entries = _chunks[chunk]!;
            for (int i = 0; i < entries.Length; i++)
                if (MappingEntry.SourceOf(entries[i]) == MappingSource.Data)
                    yield return (ChunkStart(chunk) + i, MappingEntry.PhysicalOf(entries[i]));
        }
    }

    public IEnumerable<long> PopulatedChunks()
    {
        for (long c = 0; c < _chunks.Length; c++)
            if (_chunks[c] is not null) yield return c;
    }
}
