using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>
/// Virtual block → raw <see cref="MappingEntry"/>, as a two-level table of 512-entry leaves (4 KiB) allocated on
/// first use (qcow2's L1/L2 shape): O(1) lookups, nothing allocated per request, memory only where mapped, and
/// little of it for scattered writes (a file system's metadata all over a large disk). A leaf whose entries are
/// all one value (a discarded or zeroed range) shares one read-only array per value, so discarding any range
/// costs memory independent of its length; a write into it copies it first. Persistence works in map chunks of
/// 4096 blocks (<see cref="ChunkBlocks"/>), eight leaves each. One writer thread; readers on other threads see
/// whole 64-bit entries.
/// </summary>
internal sealed class MappingTable
{
    public const int ChunkShift = 12;
    public const int ChunkBlocks = 1 << ChunkShift;
    private const int LeafShift = 9;
    private const int LeafBlocks = 1 << LeafShift;
    private const int LeafMask = LeafBlocks - 1;
    private const int LeavesPerChunk = ChunkBlocks / LeafBlocks;

    private readonly ulong[]?[] _leaves;
    // Leaves pointing at a shared uniform array (never written through).
    private readonly bool[] _uniform;
    private readonly Dictionary<ulong, ulong[]> _uniformArrays = new();
    // Highest birth epoch ever set in each map chunk (never lowered): lets a revert or a diff skip chunks unchanged since an epoch.
    private readonly uint[] _maxEpoch;
    [ThreadStatic] private static ulong[]? t_chunkCopy;

    public long BlockCount { get; }
    public int ChunkCount => _maxEpoch.Length;

    public MappingTable(long blockCount)
    {
        BlockCount = blockCount;
        _leaves = new ulong[]?[(blockCount + LeafMask) >> LeafShift];
        _uniform = new bool[_leaves.Length];
        _maxEpoch = new uint[(blockCount + ChunkBlocks - 1) >> ChunkShift];
    }

    public static long ChunkOf(long block) => block >> ChunkShift;
    public static long ChunkStart(long chunk) => chunk << ChunkShift;

    public ulong Get(long block)
    {
        var leaf = Volatile.Read(ref _leaves[block >> LeafShift]);
        return leaf is null ? 0 : Volatile.Read(ref leaf[block & LeafMask]);
    }

    public Format.Mapping.Mapping GetMapping(long block) => MappingEntry.Decode(Get(block));

    public void Set(long block, ulong raw)
    {
        long l = block >> LeafShift;
        ref var slot = ref _leaves[l];
        var leaf = slot;
        if (leaf is null)
        {
            if (raw == 0) return;
            leaf = new ulong[LeafBlocks];
            Volatile.Write(ref slot, leaf);
        }
        else if (_uniform[l])
        {
            if (leaf[block & LeafMask] == raw) return;
            leaf = (ulong[])leaf.Clone();   // the shared array stays as it is for every other leaf
            _uniform[l] = false;
            Volatile.Write(ref slot, leaf);
        }
        Volatile.Write(ref leaf[block & LeafMask], raw);
        NoteEpoch(block >> ChunkShift, raw);
    }

    private void NoteEpoch(long chunk, ulong raw)
    {
        uint epoch = (uint)((raw >> MappingEntry.EpochShift) & MappingEntry.MaxEpoch);
        ref uint max = ref _maxEpoch[chunk];
        if (epoch > max) max = epoch;
    }

    /// <summary>Sets every entry of a whole map chunk to one value in O(1): no leaves for unallocated, else shared arrays.</summary>
    public void SetChunk(long chunk, ulong raw)
    {
        ulong[]? shared = null;
        if (raw != 0)
        {
            if (MappingEntry.SourceOf(raw) == MappingSource.Data) throw new ArgumentException("a data run cannot be uniform", nameof(raw));
            if (!_uniformArrays.TryGetValue(raw, out shared))
            {
                shared = new ulong[LeafBlocks];
                Array.Fill(shared, raw);
                _uniformArrays[raw] = shared;
            }
            NoteEpoch(chunk, raw);
        }
        long first = chunk * LeavesPerChunk, end = Math.Min(_leaves.Length, first + LeavesPerChunk);
        for (long l = first; l < end; l++)
        {
            _uniform[l] = shared is not null;
            Volatile.Write(ref _leaves[l], shared);
        }
    }

    /// <summary>Whether every entry of the map chunk holds one value (no leaves, or shared arrays of one value), and which.</summary>
    public bool IsUniform(long chunk, out ulong raw)
    {
        long first = chunk * LeavesPerChunk, end = Math.Min(_leaves.Length, first + LeavesPerChunk);
        var head = _leaves[first];
        raw = head is null ? 0 : head[0];
        for (long l = first; l < end; l++)
        {
            var leaf = _leaves[l];
            if (leaf is null ? raw != 0 : !_uniform[l] || leaf[0] != raw) return false;
        }
        return true;
    }

    /// <summary>Chunks that may hold a mapping born after the given epoch.</summary>
    public IEnumerable<long> ChunksWithEpochAbove(uint epoch)
    {
        for (long c = 0; c < _maxEpoch.Length; c++)
            if (_maxEpoch[c] > epoch && IsPopulated(c)) yield return c;
    }

    /// <summary>
    /// The raw entries of one map chunk (4096, fewer for the last), or empty if nothing in it was ever set. A copy
    /// in a per-thread buffer: valid until the next call on this thread, never to be kept.
    /// </summary>
    public ReadOnlySpan<ulong> ChunkEntries(long chunk)
    {
        if (!IsPopulated(chunk)) return ReadOnlySpan<ulong>.Empty;
        var copy = t_chunkCopy ??= new ulong[ChunkBlocks];
        long first = chunk * LeavesPerChunk, end = Math.Min(_leaves.Length, first + LeavesPerChunk);
        for (long l = first; l < end; l++)
        {
            var dest = copy.AsSpan((int)(l - first) * LeafBlocks, LeafBlocks);
            if (_leaves[l] is { } leaf) leaf.CopyTo(dest);
            else dest.Clear();
        }
        return copy.AsSpan(0, (int)Math.Min(ChunkBlocks, (end - first) * LeafBlocks));
    }

    private bool IsPopulated(long chunk)
    {
        long first = chunk * LeavesPerChunk, end = Math.Min(_leaves.Length, first + LeavesPerChunk);
        for (long l = first; l < end; l++) if (_leaves[l] is not null) return true;
        return false;
    }

    /// <summary>Every block mapped to a data cluster, in block order (open and checks, not the I/O path).</summary>
    public IEnumerable<(long Block, long Physical)> DataMappings()
    {
        for (long l = 0; l < _leaves.Length; l++)
        {
            if (_leaves[l] is not { } leaf || _uniform[l]) continue;   // uniform leaves never hold data
            for (int i = 0; i < leaf.Length; i++)
                if (MappingEntry.SourceOf(leaf[i]) == MappingSource.Data)
                    yield return ((l << LeafShift) + i, MappingEntry.PhysicalOf(leaf[i]));
        }
    }

    public IEnumerable<long> PopulatedChunks()
    {
        for (long c = 0; c < _maxEpoch.Length; c++)
            if (IsPopulated(c)) yield return c;
    }
}
