using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Snapshots;

/// <summary>A mapping's identity: the block and the epoch it was born in (a block has one mapping per birth).</summary>
internal readonly record struct DeadKey(long Block, uint Birth);

/// <summary>A mapping the head dropped while a snapshot still reads it, and the epochs where it was dropped.</summary>
internal sealed class DeadEntry
{
    public MappingSource Source;
    public long Cluster;
    public uint[] Deaths = Array.Empty<uint>();
}

/// <summary>
/// Snapshots over the live mapping table, in the manner of ZFS birth times and deadlists: every mapping carries
/// the epoch it was born in; a snapshot freezes the head's epoch (O(1)); a mapping the head drops (overwrite,
/// discard, revert) is freed at once if no snapshot reads it, and otherwise kept as a dead entry with the epoch
/// of its death. Deleting a snapshot looks only at the dead entries born in its own stretch of history.
/// Owned by the responder thread, like the table.
/// </summary>
internal sealed class History
{
    private readonly MappingTable _table;
    private readonly Dictionary<DeadKey, DeadEntry> _dead = new();
    private readonly Dictionary<uint, HashSet<DeadKey>> _byBirth = new();
    private readonly Dictionary<uint, HashSet<DeadKey>> _byDeath = new();
    private readonly Dictionary<long, HashSet<DeadKey>> _byChunk = new();   // by dead page
    private readonly Dictionary<uint, uint[]> _singleDeaths = new();

    /// <summary>Dead extents are stored in pages of 512 blocks, so a commit rewrites at most 512 blocks' worth per page it touches.</summary>
    public const int PageShift = 9;
    public const int PageBlocks = 1 << PageShift;
    public static long PageOf(long block) => block >> PageShift;
    public static long PageStart(long page) => page << PageShift;

    public EpochTree Tree { get; private set; }

    /// <summary>Dead pages (512 blocks) whose dead entries changed since the last commit.</summary>
    public HashSet<long> DirtyDeadChunks { get; } = new();
    /// <summary>The epoch tree or the snapshot list changed since the last commit.</summary>
    public bool TreeDirty { get; set; }

    /// <summary>Called with each data cluster no mapping references any more (to be released once durable).</summary>
    public Action<long>? Free { get; set; }

    /// <summary>Whether a registered clone still exists (its file is that image); stale registrations are dropped.</summary>
    public Func<CloneRef, bool> CloneExists { get; set; } = _ => true;

    /// <summary>Whether a process reads a snapshot view without the image's lock (served by its writer): no delete then.</summary>
    public Func<bool> ViewReaders { get; set; } = () => false;

    public History(MappingTable table, EpochTree tree, Layers? layers = null) { _table = table; Tree = tree; Layers = layers ?? new Layers(); }

    /// <summary>The layered blocks (first writes after a snapshot that copied nothing), live and dead alike.</summary>
    public Layers Layers { get; }

    public uint Head => Tree.Head;
    public int DeadCount => _dead.Count;

    /// <summary>True when a live mapping born in this epoch is read by a snapshot (copy before overwriting).</summary>
    public bool IsShared(uint birth) => birth <= Tree.SharedThrough;

    // ---- loading and saving ----

    /// <summary>Adds a stored dead entry (one row per death); throws CorruptImageException on contradictions.</summary>
    public void Load(long block, MappingSource source, long cluster, uint birth, uint death)
    {
        if (block < 0 || block >= _table.BlockCount) throw new CorruptImageException($"dead extent at block {block} lies outside the disk");
        var key = new DeadKey(block, birth);
        if (_dead.TryGetValue(key, out var e))
        {
            if (e.Source != source || e.Cluster != cluster)
                throw new CorruptImageException($"block {block} born in epoch {birth} has two different dead extents");
            if (death == DeadRecord.NoDeath || e.Deaths.Contains(death))
                throw new CorruptImageException($"dead extent of block {block} is stored twice with death {death}");
            AddDeath(key, e, death);
            return;
        }
        e = new DeadEntry { Source = source, Cluster = cluster };
        Insert(key, e);
        if (death != DeadRecord.NoDeath) AddDeath(key, e, death);
    }

    /// <summary>Checks the loaded entries against the tree; run once after loading.</summary>
    public void Validate()
    {
        foreach (var (key, e) in _dead)
        {
            if (!Tree.Contains(key.Birth)) throw new CorruptImageException($"dead extent of block {key.Block} was born in unknown epoch {key.Birth}");
            foreach (uint d in e.Deaths)
                if (!Tree.Contains(d)) throw new CorruptImageException($"dead extent of block {key.Block} died in unknown epoch {d}");
        }
        var headPath = new HashSet<uint>(Tree.PathToRoot(Tree.Head));
        foreach (long chunk in _table.PopulatedChunks())
        {
            var entries = _table.ChunkEntries(chunk);
            for (int i = 0; i < entries.Length; i++)
            {
                if (entries[i] == 0) continue;
                var m = MappingEntry.Decode(entries[i]);
                long block = MappingTable.ChunkStart(chunk) + i;
                if (!headPath.Contains(m.Epoch))
                    throw new CorruptImageException($"block {block} is mapped with birth epoch {m.Epoch}, which the head does not descend from");
                if (_dead.Count > 0 && _dead.TryGetValue(new DeadKey(block, m.Epoch), out var e) && (e.Source != m.Source || e.Cluster != m.PhysicalCluster))
                    throw new CorruptImageException($"block {block} born in epoch {m.Epoch} is both mapped and dead with another extent");
            }
        }
    }

    /// <summary>Checks every layer against the loaded mappings (live and dead); run once the live table is loaded.</summary>
    public void ValidateLayers(Format.Image.ClusterGeometry geometry) => Layers.Validate(geometry, ClusterOf);

    /// <summary>The cluster of the data mapping of block born at birth, live or dead, or null.</summary>
    public long? ClusterOf(DeadKey key)
    {
        var live = _table.GetMapping(key.Block);
        if (live.IsData && live.Epoch == key.Birth) return live.PhysicalCluster;
        return _dead.TryGetValue(key, out var e) && e.Source == MappingSource.Data ? e.Cluster : null;
    }

    /// <summary>Every dead entry's data cluster, for the allocator and the checks; live resurrected ones are included.</summary>
    public IEnumerable<(DeadKey Key, long Cluster)> DeadClusters()
    {
        foreach (var (key, e) in _dead)
            if (e.Source == MappingSource.Data) yield return (key, e.Cluster);
    }

    /// <summary>True when the live table holds this very mapping (a dead entry the head reads again after a revert).</summary>
    public bool IsLive(DeadKey key, DeadEntry e)
    {
        ulong raw = _table.Get(key.Block);
        if (raw == 0) return false;
        var m = MappingEntry.Decode(raw);
        return m.Epoch == key.Birth && m.Source == e.Source && m.PhysicalCluster == e.Cluster;
    }

    /// <summary>The packed rows of one dead page's entries, or null when it has none.</summary>
    public byte[]? EncodeChunk(long chunk)
    {
        if (!_byChunk.TryGetValue(chunk, out var keys) || keys.Count == 0) return null;
        var rows = new List<(uint Birth, uint Death, long Block, MappingSource Source, long Cluster)>();
        foreach (var key in keys)
        {
            var e = _dead[key];
            foreach (uint d in e.Deaths) rows.Add((key.Birth, d, key.Block, e.Source, e.Cluster));
            if (e.Deaths.Length == 0) rows.Add((key.Birth, DeadRecord.NoDeath, key.Block, e.Source, e.Cluster));
        }
        rows.Sort();
        var runs = new List<DeadRecord>();
        long chunkStart = PageStart(chunk);
        int i = 0;
        while (i < rows.Count)
        {
            var r = rows[i];
            int n = 1;
            while (i + n < rows.Count && rows[i + n] is var x && x.Birth == r.Birth && x.Death == r.Death && x.Source == r.Source &&
                   x.Block == r.Block + n && (r.Source != MappingSource.Data || x.Cluster == r.Cluster + n)) n++;
            runs.Add(new DeadRecord((int)(r.Block - chunkStart), n, r.Source, r.Birth, r.Death, r.Source == MappingSource.Data ? r.Cluster : 0));
            i += n;
        }
        var bytes = new byte[runs.Count * DeadRecord.Size];
        for (int k = 0; k < runs.Count; k++) runs[k].Write(bytes.AsSpan(k * DeadRecord.Size));
        return bytes;
    }

    // ---- the head drops a mapping ----

    /// <summary>
    /// The head no longer maps this block to m (overwritten with a copy, discarded, zeroed, reverted): free it
    /// if no snapshot reads it, else remember it as dead in the head's epoch.
    /// </summary>
    public void Drop(long block, in Format.Mapping.Mapping m) => Drop(block, m, Tree.Head, exact: false);

    private void Drop(long block, in Format.Mapping.Mapping m, uint deathEpoch, bool exact)
    {
        if (m.Source is not (MappingSource.Data or MappingSource.Zero)) return;
        var key = new DeadKey(block, m.Epoch);
        bool known = _dead.TryGetValue(key, out var e);
        if (!known && !exact && !IsShared(m.Epoch) && !Layers.IsPinned(key))
        {
            if (m.IsData) FreeMapping(key, m.PhysicalCluster);   // born after every snapshot: the head's alone
            return;
        }
        if (!known)
        {
            e = new DeadEntry { Source = m.Source, Cluster = m.IsData ? m.PhysicalCluster : 0 };
            Insert(key, e);
        }
        AddDeath(key, e!, deathEpoch);
        DirtyDeadChunks.Add(PageOf(block));
        // A fresh entry born at or above SharedThrough is read by a snapshot; others need the full test.
        if ((known || exact) && !SeenBySnapshot(key, e!)) Remove(key, e!);
    }

    /// <summary>Whether the live disk reads this mapping: it maps it, or a layer it maps lies over it.</summary>
    public bool HeldByHead(DeadKey key)
    {
        var live = _table.GetMapping(key.Block);
        if (live.IsData && live.Epoch == key.Birth) return true;
        foreach (var top in Layers.Over(key))
            if (live.IsData && live.Epoch == top.Birth) return true;
        return false;
    }

    /// <summary>Whether a snapshot reads this dropped mapping.</summary>
    public bool ReadBySnapshot(DeadKey key) => _dead.TryGetValue(key, out var e) && SeenBySnapshot(key, e);

    /// <summary>Whether any snapshot reads this mapping (the head aside).</summary>
    private bool SeenBySnapshot(DeadKey key, DeadEntry e) => CountSeeing(key.Birth, e.Deaths, 1, null) > 0;

    /// <summary>
    /// The snapshots that read a mapping born at birth and dropped at deaths, up to max of them: a walk down the tree
    /// from its birth that stops below each death, so it costs the stretch of history the mapping lived in.
    /// </summary>
    private int CountSeeing(uint birth, uint[] deaths, int max, List<uint>? into)
    {
        if (!Tree.Contains(birth)) return 0;
        int n = 0;
        var stack = new Stack<uint>();
        stack.Push(birth);
        while (stack.Count > 0 && n < max)
        {
            uint node = stack.Pop();
            if (deaths.Contains(node)) continue;   // dropped here: nothing at or below reads it
            if (Tree.IsSnapshot(node)) { n++; into?.Add(node); }
            foreach (uint child in Tree.Children(node)) stack.Push(child);
        }
        return n;
    }

    private void Remove(DeadKey key, DeadEntry e)
    {
        if (Layers.IsPinned(key)) return;   // a layer reads it: it goes when the last such layer goes
        _dead.Remove(key);
        _byBirth[key.Birth].Remove(key);
        foreach (uint d in e.Deaths) if (_byDeath.TryGetValue(d, out var died)) died.Remove(key);   // a pruned death's set may be gone
        _byChunk[PageOf(key.Block)].Remove(key);
        DirtyDeadChunks.Add(PageOf(key.Block));
        if (e.Source == MappingSource.Data && !IsLive(key, e)) FreeMapping(key, e.Cluster);
    }

    /// <summary>A data mapping nothing references any more: its cluster is freed, and if it was layered, what lay under it may go too.</summary>
    private void FreeMapping(DeadKey key, long cluster)
    {
        Free?.Invoke(cluster);
        if (Layers.Remove(key) is { } layer) ReleaseUnder(key.Block, layer);
    }

    /// <summary>A layer no longer reads the mapping under it: free that mapping if nothing else does.</summary>
    private void ReleaseUnder(long block, Layer layer)
    {
        var under = layer.UnderKey(block);
        if (_dead.TryGetValue(under, out var e) && !IsLive(under, e) && !SeenBySnapshot(under, e)) Remove(under, e);
    }

    // ---- layers: a first partial write over a shared cluster copies nothing ----

    /// <summary>
    /// The head now maps block to top (a new cluster holding only the subclusters in mask) over the mapping it had,
    /// which a snapshot shares: that one is dropped (kept dead for the snapshot) and pinned for the other subclusters.
    /// </summary>
    public void AddLayer(long block, in Format.Mapping.Mapping top, ulong mask, in Format.Mapping.Mapping under)
    {
        if (!under.IsData || !top.IsData || under.Epoch >= top.Epoch)
            throw new CorruptImageException($"block {block}: cannot layer {top} over {under}");
        Layers.Add(new DeadKey(block, top.Epoch), new Layer(mask, under.Epoch, under.PhysicalCluster));
        Drop(block, under);
    }

    /// <summary>The head's layered mapping of block gained subclusters; once it holds all of them it is an ordinary mapping.</summary>
    public void ExtendLayer(long block, uint birth, ulong mask, ulong full)
    {
        var key = new DeadKey(block, birth);
        if (!Layers.TryGet(block, birth, out var layer)) throw new CorruptImageException($"block {block} born in epoch {birth} is not layered");
        ulong merged = layer.Mask | mask;
        if ((merged & full) != full) { Layers.SetMask(key, merged); return; }
        Layers.Remove(key);
        ReleaseUnder(block, layer);
    }

    /// <summary>Forgets a dead entry without freeing its cluster (the head maps it again).</summary>
    private void Unindex(DeadKey key)
    {
        var e = _dead[key];
        _dead.Remove(key);
        _byBirth[key.Birth].Remove(key);
        foreach (uint d in e.Deaths) if (_byDeath.TryGetValue(d, out var died)) died.Remove(key);   // a pruned death's set may be gone
        _byChunk[PageOf(key.Block)].Remove(key);
        DirtyDeadChunks.Add(PageOf(key.Block));
    }

    private void Insert(DeadKey key, DeadEntry e)
    {
        _dead.Add(key, e);
        SetOf(_byBirth, key.Birth).Add(key);
        SetOf(_byChunk, PageOf(key.Block)).Add(key);
    }

    private void AddDeath(DeadKey key, DeadEntry e, uint death)
    {
        if (e.Deaths.Contains(death)) return;
        // Most dead extents die once: they share one array per epoch (never written; a change makes a new one).
        if (e.Deaths.Length == 0)
        {
            if (!_singleDeaths.TryGetValue(death, out var single)) _singleDeaths[death] = single = [death];
            e.Deaths = single;
        }
        else e.Deaths = [.. e.Deaths, death];
        SetOf(_byDeath, death).Add(key);
    }

    private static HashSet<DeadKey> SetOf<TKey>(Dictionary<TKey, HashSet<DeadKey>> index, TKey k) where TKey : notnull
    {
        if (!index.TryGetValue(k, out var set)) index[k] = set = new HashSet<DeadKey>();
        return set;
    }

    // ---- snapshot operations ----

    public SnapshotInfo Create(string name, DateTime createdUtc)
    {
        var snap = Tree.Create(name, createdUtc);
        TreeDirty = true;
        return snap;
    }

    /// <summary>Forgets a snapshot and frees what only it read. Costs the dead entries born in its own stretch of history.</summary>
    public void Delete(SnapshotInfo snap)
    {
        // Its stretch: from the snapshot up to (not including) the nearest snapshot above it. Mappings born
        // higher up are read by that snapshot and stay.
        var stretch = new List<uint>();
        foreach (uint n in Tree.PathToRoot(snap.Epoch))
        {
            if (n != snap.Epoch && Tree.IsSnapshot(n)) break;
            stretch.Add(n);
        }
        var pruned = Tree.Delete(snap);
        TreeDirty = true;
        foreach (uint b in stretch)
        {
            if (!_byBirth.TryGetValue(b, out var keys)) continue;
            foreach (var key in keys.ToList())
            {
                if (!_dead.TryGetValue(key, out var e)) continue;   // freed already, under a layer freed before it
                if (IsLive(key, e) || SeenBySnapshot(key, e)) continue;
                Remove(key, e);
            }
        }
        ForgetDeaths(pruned);
        Compact();
    }

    /// <summary>
    /// After a delete freed many dead extents, give their memory back: indexes keep their peak capacity otherwise.
    /// </summary>
    private void Compact()
    {
        foreach (var index in new[] { _byBirth, _byDeath })
            foreach (var (k, set) in index.ToList())
                if (set.Count == 0) index.Remove(k);
                else set.TrimExcess();
        foreach (var (k, set) in _byChunk.ToList())
            if (set.Count == 0) _byChunk.Remove(k);
        _dead.TrimExcess();
        foreach (var d in _singleDeaths.Keys.Where(d => !_byDeath.ContainsKey(d)).ToList()) _singleDeaths.Remove(d);
    }

    /// <summary>
    /// Makes the head read as the snapshot: the blocks that differ get the snapshot's mappings, and what the head
    /// drops is freed unless another snapshot reads it. Costs what changed between the snapshot and the head.
    /// Calls changed for every block whose mapping changed.
    /// </summary>
    public void Revert(SnapshotInfo snap, Action<long> changed)
    {
        uint h = Tree.Head;
        foreach (var (b, atSnapshot, atHead) in Differences(snap.Epoch, h))
        {
            if (_table.Get(b) != atHead) throw new CorruptImageException($"block {b}: the head's mapping is not the one its history says");
            _table.Set(b, atSnapshot);
            if (atHead != 0) Drop(b, MappingEntry.Decode(atHead), h, exact: true);
            // Back in the head with no death recorded: an ordinary live mapping again, not a dead entry.
            if (atSnapshot != 0 && _dead.Count > 0 && MappingEntry.Decode(atSnapshot) is var back &&
                _dead.TryGetValue(new DeadKey(b, back.Epoch), out var revived) && revived.Deaths.Length == 0)
                Unindex(new DeadKey(b, back.Epoch));
            changed(b);
        }
        var (_, pruned) = Tree.Revert(snap);
        TreeDirty = true;
        ForgetDeaths(pruned);
    }

    /// <summary>
    /// The blocks that read differently at epochs x and y (snapshots or the head), with the raw mapping each
    /// sees (0: none). Only mappings born or dropped below their common ancestor can be seen by one and not the
    /// other, so the cost is what changed on the two sides, never the disk size.
    /// </summary>
    public List<(long Block, ulong AtX, ulong AtY)> Differences(uint x, uint y)
    {
        uint lca = Tree.CommonAncestor(x, y);
        var sides = Tree.PathToRoot(x).TakeWhile(n => n != lca).Concat(Tree.PathToRoot(y).TakeWhile(n => n != lca)).ToList();
        var ancX = new HashSet<uint>(Tree.PathToRoot(x));
        var ancY = new HashSet<uint>(Tree.PathToRoot(y));
        var candidates = new Dictionary<long, List<(ulong Raw, uint Birth, uint[] Deaths)>>();
        void Add(long block, ulong raw, uint birth, uint[] deaths)
        {
            if (!candidates.TryGetValue(block, out var list)) candidates[block] = list = new();
            if (!list.Any(c => c.Birth == birth)) list.Add((raw, birth, deaths));
        }
        var keys = new HashSet<DeadKey>();
        foreach (uint n in sides)
        {
            if (_byBirth.TryGetValue(n, out var born)) keys.UnionWith(born);
            if (_byDeath.TryGetValue(n, out var died)) keys.UnionWith(died);
        }
        foreach (var key in keys)
        {
            var e = _dead[key];
            Add(key.Block, MappingEntry.Encode(new Format.Mapping.Mapping(e.Source, e.Cluster, key.Birth)), key.Birth, e.Deaths);
        }
        // Live mappings born below the common ancestor (the head's side): found by the chunks' newest births.
        foreach (long chunk in _table.ChunksWithEpochAbove(lca))
        {
            var entries = _table.ChunkEntries(chunk);
            for (int i = 0; i < entries.Length; i++)
            {
                if (entries[i] == 0) continue;
                var m = MappingEntry.Decode(entries[i]);
                if (m.Epoch <= lca) continue;
                long b = MappingTable.ChunkStart(chunk) + i;
                Add(b, entries[i], m.Epoch, _dead.TryGetValue(new DeadKey(b, m.Epoch), out var known) ? known.Deaths : Array.Empty<uint>());
            }
        }
        var result = new List<(long, ulong, ulong)>();
        foreach (var (block, list) in candidates)
        {
            ulong atX = 0, atY = 0;
            foreach (var c in list)
            {
                if (SeesWith(ancX, c.Birth, c.Deaths)) atX = atX == 0 ? c.Raw : throw new CorruptImageException($"block {block} has two mappings in epoch {x}");
                if (SeesWith(ancY, c.Birth, c.Deaths)) atY = atY == 0 ? c.Raw : throw new CorruptImageException($"block {block} has two mappings in epoch {y}");
            }
            if (atX != atY) result.Add((block, atX, atY));
        }
        result.Sort((a, b) => a.Item1.CompareTo(b.Item1));
        return result;
    }

    private static bool SeesWith(HashSet<uint> ancestors, uint birth, ReadOnlySpan<uint> deaths)
    {
        if (!ancestors.Contains(birth)) return false;
        foreach (uint d in deaths) if (ancestors.Contains(d)) return false;
        return true;
    }

    // Deaths in pruned epochs concern no remaining epoch: drop them, so stored rows name only known epochs.
    private void ForgetDeaths(List<uint> pruned)
    {
        foreach (uint p in pruned)
        {
            if (_byBirth.Remove(p, out var born) && born.Count > 0)
                throw new CorruptImageException($"epoch {p} was pruned while {born.Count} dead extents born in it remain");
            if (!_byDeath.Remove(p, out var keys)) continue;
            foreach (var key in keys.ToList())
            {
                if (!_dead.TryGetValue(key, out var e)) continue;   // freed already, under a layer freed before it
                e.Deaths = e.Deaths.Where(d => d != p).ToArray();
                DirtyDeadChunks.Add(PageOf(key.Block));
                if (e.Deaths.Length == 0)
                {
                    // Dropped only on a branch that is gone: it is either the head's again or read by nobody.
                    if (!IsLive(key, e) && !SeenBySnapshot(key, e)) Remove(key, e);
                    else if (IsLive(key, e)) Unindex(key);
                }
            }
        }
    }

    // ---- reading a snapshot ----

    /// <summary>The mapping table the snapshot reads: O(mapped blocks), for opening a snapshot view.</summary>
    public MappingTable BuildView(uint epoch)
    {
        var anc = new HashSet<uint>(Tree.PathToRoot(epoch));
        var view = new MappingTable(_table.BlockCount);
        foreach (long chunk in _table.PopulatedChunks())
        {
            var entries = _table.ChunkEntries(chunk);
            for (int i = 0; i < entries.Length; i++)
            {
                if (entries[i] == 0) continue;
                var m = MappingEntry.Decode(entries[i]);
                long b = MappingTable.ChunkStart(chunk) + i;
                _dead.TryGetValue(new DeadKey(b, m.Epoch), out var known);
                if (SeesWith(anc, m.Epoch, known is null ? ReadOnlySpan<uint>.Empty : known.Deaths)) view.Set(b, entries[i]);
            }
        }
        foreach (var (key, e) in _dead)
        {
            if (!SeesWith(anc, key.Birth, e.Deaths)) continue;
            ulong raw = MappingEntry.Encode(new Format.Mapping.Mapping(e.Source, e.Cluster, key.Birth));
            ulong had = view.Get(key.Block);
            if (had != 0 && had != raw) throw new CorruptImageException($"block {key.Block} has two mappings in epoch {epoch}");
            view.Set(key.Block, raw);
        }
        return view;
    }

    /// <summary>Data clusters of dead extents that no snapshot reads and the head does not map: leaks (check reports them).</summary>
    public long UnreadDeadClusters()
    {
        long n = 0;
        foreach (var (key, e) in _dead)
            if (e.Source == MappingSource.Data && !IsLive(key, e) && !Layers.IsPinned(key) && CountSeeing(key.Birth, e.Deaths, 1, null) == 0) n++;
        return n;
    }

    /// <summary>For a snapshot's view: whether another point (the live disk or another snapshot) reads this same mapping too.</summary>
    public bool SharedBeyond(long block, uint birth, long cluster)
    {
        var live = _table.GetMapping(block);
        if (live.IsData && live.Epoch == birth && live.PhysicalCluster == cluster) return true;
        return _dead.TryGetValue(new DeadKey(block, birth), out var e) && CountSeeing(birth, e.Deaths, 2, null) >= 2;
    }

    /// <summary>Forgets dead extents no snapshot reads and the head does not map, freeing their clusters (check --repair). Returns how many data clusters.</summary>
    public long DropUnread()
    {
        long n = 0;
        foreach (var (key, e) in _dead.ToList())
        {
            if (!_dead.ContainsKey(key)) continue;   // freed already, under a layer freed before it
            if (IsLive(key, e) || Layers.IsPinned(key) || CountSeeing(key.Birth, e.Deaths, 1, null) > 0) continue;
            if (e.Source == MappingSource.Data) n++;
            Remove(key, e);
        }
        return n;
    }

    /// <summary>The snapshots, oldest first, with the bytes each alone holds.</summary>
    public List<SnapshotInfo> ListSnapshots(int clusterSize)
    {
        var exclusive = ExclusiveClusters();
        return Tree.Snapshots.OrderBy(s => s.Epoch).Select(s => s with { ExclusiveBytes = exclusive[s.Epoch] * clusterSize }).ToList();
    }

    /// <summary>
    /// For every snapshot, the data clusters only it reads (what deleting it would free): one pass over the dead
    /// extents, each walked down the stretch of history it lived in.
    /// </summary>
    public Dictionary<uint, long> ExclusiveClusters()
    {
        var counts = Tree.Snapshots.ToDictionary(s => s.Epoch, _ => 0L);
        var seeing = new List<uint>(2);
        foreach (var (key, e) in _dead)
        {
            if (e.Source != MappingSource.Data || IsLive(key, e)) continue;
            seeing.Clear();
            if (Layers.IsPinned(key))
            {
                // Held too by the layers over it: only one snapshot's if no live layer reads it and every reader,
                // itself or through a dead layer, is that one snapshot.
                if (HeldByHead(key)) continue;
                CountSeeing(key.Birth, e.Deaths, 2, seeing);
                foreach (var top in Layers.Over(key))
                    if (_dead.TryGetValue(top, out var t)) CountSeeing(top.Birth, t.Deaths, 2, seeing);
                if (seeing.Distinct().Take(2).Count() == 1) counts[seeing[0]]++;
                continue;
            }
            if (CountSeeing(key.Birth, e.Deaths, 2, seeing) == 1) counts[seeing[0]]++;
        }
        return counts;
    }
}
