using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>
/// The target's cache of answers from the responder (dm-userspace's in-kernel map cache). Entry 0 is a miss.
/// Entries from responses are only inserted where the slot is empty, so a response that raced with this
/// target's own completed write cannot overwrite the newer mapping the writer stored; INVALIDATE clears.
/// Lock-free: many I/O threads read and write, the completion thread inserts and clears.
/// </summary>
internal sealed class MappingCache
{
    private readonly ulong[]?[] _chunks;

    public MappingCache(long blockCount) =>
        _chunks = new ulong[]?[(blockCount + MappingTable.ChunkBlocks - 1) >> MappingTable.ChunkShift];

    public ulong Get(long block)
    {
        var chunk = Volatile.Read(ref _chunks[block >> MappingTable.ChunkShift]);
        return chunk is null ? 0 : Volatile.Read(ref chunk[block & (MappingTable.ChunkBlocks - 1)]);
    }

    /// <summary>Stores a response's mapping unless the slot already holds one.</summary>
    public void InsertIfAbsent(long block, ulong raw) =>
        Interlocked.CompareExchange(ref Slot(block), raw, 0);

    /// <summary>Stores a mapping this target just made true (its own completed write).</summary>
    public void Store(long block, ulong raw) => Interlocked.Exchange(ref Slot(block), raw);

    public void Invalidate(long firstBlock, long count)
    {
        for (long b = firstBlock; b < firstBlock + count; b++)
        {
            var chunk = Volatile.Read(ref _chunks[b >> MappingTable.ChunkShift]);
            if (chunk is null) { b |= MappingTable.ChunkBlocks - 1; continue; }   // skip to the next chunk
            Interlocked.Exchange(ref chunk[b & (MappingTable.ChunkBlocks - 1)], 0);
        }
    }

    /// <summary>Drops every entry: for when the order of the answers can no longer be trusted.</summary>
    public void Clear()
    {
        for (int i = 0; i < _chunks.Length; i++) Volatile.Write(ref _chunks[i], null);
    }

    private ref ulong Slot(long block)
    {
        ref var slot = ref _chunks[block >> MappingTable.ChunkShift];
        var chunk = Volatile.Read(ref slot);
        if (chunk is null)
        {
            Interlocked.CompareExchange(ref slot, new ulong[MappingTable.ChunkBlocks], null);
            chunk = Volatile.Read(ref slot)!;
        }
        return ref chunk[block & (MappingTable.ChunkBlocks - 1)];
    }

    public static ulong Encode(MappingSource source, long physical = 0, bool shared = false) =>
        MappingEntry.Encode(new Format.Mapping.Mapping(source, physical, 0, shared));
}
