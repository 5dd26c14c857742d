using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>
/// The target's cache of answers from the responder (dm-userspace's in-kernel map cache). Entry 0 is a miss.
/// Entries from responses are only inserted where the slot is empty, so a response that raced with this
/// target's own completed write cannot overwrite the newer mapping the writer stored; INVALIDATE clears.
/// Lock-free: many I/O threads read and write, the completion thread inserts and clears. An answer covering whole
/// chunks with one value (zeros, the base) shares one read-only array, so caching a long run costs no memory
/// per block; a store into such a chunk copies it first.
/// </summary>
internal sealed class MappingCache
{
    private const int LeafShift = 9;              // 512 entries (4 KiB) per leaf: scattered writes cost little memory
    private const int LeafBlocks = 1 << LeafShift;
    private readonly ulong[]?[] _chunks;
    private static readonly ulong[] s_allZero = Filled(Encode(MappingSource.Zero));
    private static readonly ulong[] s_allBacking = Filled(Encode(MappingSource.Backing));

    private static ulong[] Filled(ulong raw)
    {
        var a = new ulong[LeafBlocks];
        Array.Fill(a, raw);
        return a;
    }

    private static bool IsShared(ulong[] chunk) => ReferenceEquals(chunk, s_allZero) || ReferenceEquals(chunk, s_allBacking);

    public MappingCache(long blockCount) =>
        _chunks = new ulong[]?[(blockCount + LeafBlocks - 1) >> LeafShift];

    public ulong Get(long block)
    {
        var chunk = Volatile.Read(ref _chunks[block >> LeafShift]);
        return chunk is null ? 0 : Volatile.Read(ref chunk[block & (LeafBlocks - 1)]);
    }

    /// <summary>Stores a response's mapping unless the slot already holds one.</summary>
    public void InsertIfAbsent(long block, ulong raw)
    {
        var chunk = Volatile.Read(ref _chunks[block >> LeafShift]);
        if (chunk is not null && IsShared(chunk)) return;   // every slot of it is filled already
        Interlocked.CompareExchange(ref Slot(block), raw, 0);
    }

    /// <summary>
    /// Stores one mapping for a run of blocks where slots are empty; whole chunks that were empty take a shared
    /// array (zeros or the base only) instead of 4096 entries.
    /// </summary>
    public void InsertRunIfAbsent(long block, long count, ulong raw)
    {
        var shared = raw == s_allZero[0] ? s_allZero : raw == s_allBacking[0] ? s_allBacking : null;
        long end = block + count;
        while (block < end)
        {
            long c = block >> LeafShift;
            long chunkEnd = Math.Min(end, (c + 1) << LeafShift);
            if (shared is not null && (block & (LeafBlocks - 1)) == 0 && chunkEnd - block == LeafBlocks &&
                Interlocked.CompareExchange(ref _chunks[c], shared, null) is null)
            {
                block = chunkEnd;
                continue;
            }
            for (; block < chunkEnd; block++) InsertIfAbsent(block, raw);
        }
    }

    /// <summary>Stores a mapping this target just made true (its own completed write).</summary>
    public void Store(long block, ulong raw) => Interlocked.Exchange(ref Slot(block), raw);

    public void Invalidate(long firstBlock, long count)
    {
        for (long b = firstBlock; b < firstBlock + count; b++)
        {
            long c = b >> LeafShift;
            var chunk = Volatile.Read(ref _chunks[c]);
            if (chunk is null) { b |= LeafBlocks - 1; continue; }   // skip to the next chunk
            if ((b & (LeafBlocks - 1)) == 0 && firstBlock + count - b >= LeafBlocks)
            {
                Volatile.Write(ref _chunks[c], null);   // the whole chunk: a miss everywhere, in O(1)
                b |= LeafBlocks - 1;
                continue;
            }
            Interlocked.Exchange(ref Slot(b), 0);   // a shared chunk is copied first
        }
    }

    /// <summary>Drops every entry: for when the order of the answers can no longer be trusted.</summary>
    public void Clear()
    {
        for (int i = 0; i < _chunks.Length; i++) Volatile.Write(ref _chunks[i], null);
    }

    private ref ulong Slot(long block)
    {
        long c = block >> LeafShift;
        ref var slot = ref _chunks[c];
        while (true)
        {
            var chunk = Volatile.Read(ref slot);
            if (chunk is null)
            {
                Interlocked.CompareExchange(ref slot, new ulong[LeafBlocks], null);
                continue;
            }
            if (IsShared(chunk))
            {
                Interlocked.CompareExchange(ref slot, (ulong[])chunk.Clone(), chunk);   // copy before writing
                continue;
            }
            return ref chunk[block & (LeafBlocks - 1)];
        }
    }

    /// <summary>
    /// Stored for a block that became layered: reads as a miss (its source is Unallocated), but is not empty, so
    /// an older answer racing with the writer's store cannot fill the slot. Layered blocks are never cached.
    /// </summary>
    public const ulong Uncached = 1;

    public static ulong Encode(MappingSource source, long physical = 0, bool shared = false) =>
        MappingEntry.Encode(new Format.Mapping.Mapping(source, physical, 0, shared));
}
