using CowDisk.Engine.Devices;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Snapshots;

/// <summary>
/// The lower half of a layered block: the subclusters its top mapping's cluster holds (Mask), and the mapping it
/// was written over (a dead extent a snapshot shares), which serves the block's other subclusters.
/// </summary>
internal readonly record struct Layer(ulong Mask, uint UnderBirth, long UnderCluster)
{
    public DeadKey UnderKey(long block) => new(block, UnderBirth);
}

/// <summary>
/// Layers by the top mapping's identity (block, birth), live or dead alike, and how many layers read each mapping
/// underneath (a pinned mapping is not freed even when no snapshot reads it). Persisted per page of 512 blocks, like
/// the dead extents. Owned by the responder thread, like the history; a snapshot view only reads it.
/// </summary>
internal sealed class Layers
{
    private readonly Dictionary<DeadKey, Layer> _byTop = new();
    // The tops over each pinned mapping (usually one; more after reverts brought a mapping back and it was layered again).
    private readonly Dictionary<DeadKey, List<DeadKey>> _over = new();
    private readonly Dictionary<long, HashSet<DeadKey>> _byPage = new();

    public int Count => _byTop.Count;

    /// <summary>Pages whose layers changed since the last commit.</summary>
    public HashSet<long> DirtyPages { get; } = new();

    public bool TryGet(long block, uint topBirth, out Layer layer)
    {
        if (_byTop.Count == 0) { layer = default; return false; }
        return _byTop.TryGetValue(new DeadKey(block, topBirth), out layer);
    }

    /// <summary>Whether a layer reads this mapping as its lower half.</summary>
    public bool IsPinned(DeadKey key) => _over.Count > 0 && _over.ContainsKey(key);

    /// <summary>The top mappings whose layers read this mapping as their lower half.</summary>
    public IReadOnlyList<DeadKey> Over(DeadKey under) => _over.TryGetValue(under, out var tops) ? tops : [];

    public IEnumerable<(DeadKey Top, Layer Layer)> All => _byTop.Select(p => (p.Key, p.Value));

    public void Add(DeadKey top, Layer layer)
    {
        _byTop.Add(top, layer);
        var under = layer.UnderKey(top.Block);
        if (!_over.TryGetValue(under, out var tops)) _over[under] = tops = new List<DeadKey>(1);
        tops.Add(top);
        long page = History.PageOf(top.Block);
        if (!_byPage.TryGetValue(page, out var set)) _byPage[page] = set = new HashSet<DeadKey>();
        set.Add(top);
        DirtyPages.Add(page);
    }

    public void SetMask(DeadKey top, ulong mask)
    {
        _byTop[top] = _byTop[top] with { Mask = mask };
        DirtyPages.Add(History.PageOf(top.Block));
    }

    /// <summary>Forgets the layer of a top mapping (freed, or now holding every subcluster); returns it, or null.</summary>
    public Layer? Remove(DeadKey top)
    {
        if (_byTop.Count == 0 || !_byTop.Remove(top, out var layer)) return null;
        var under = layer.UnderKey(top.Block);
        var tops = _over[under];
        tops.Remove(top);
        if (tops.Count == 0) _over.Remove(under);
        long page = History.PageOf(top.Block);
        _byPage[page].Remove(top);
        if (_byPage[page].Count == 0) _byPage.Remove(page);
        DirtyPages.Add(page);
        return layer;
    }

    /// <summary>A stored row; throws CorruptImageException on a duplicate.</summary>
    public void Load(long block, in LayerRecord rec)
    {
        var top = new DeadKey(block, rec.TopBirth);
        if (_byTop.ContainsKey(top)) throw new CorruptImageException($"block {block} born in epoch {rec.TopBirth} has two layers");
        Add(top, new Layer(rec.Mask, rec.UnderBirth, rec.UnderCluster));
    }

    /// <summary>The packed rows of one page, or null when it has none.</summary>
    public byte[]? EncodePage(long page)
    {
        if (!_byPage.TryGetValue(page, out var keys) || keys.Count == 0) return null;
        var rows = keys.OrderBy(k => k.Block).ThenBy(k => k.Birth).ToList();
        var bytes = new byte[rows.Count * LayerRecord.Size];
        long start = History.PageStart(page);
        for (int i = 0; i < rows.Count; i++)
        {
            var l = _byTop[rows[i]];
            new LayerRecord((int)(rows[i].Block - start), rows[i].Birth, l.Mask, l.UnderBirth, l.UnderCluster).Write(bytes.AsSpan(i * LayerRecord.Size));
        }
        return bytes;
    }

    /// <summary>
    /// Every layer against the mappings (once the live table and the dead extents are loaded): its top is a Data
    /// mapping that exists (live or dead) in another cluster than its lower half, the mask names subclusters of
    /// the block and not all of them, and the lower half is a Data mapping that exists with that cluster.
    /// </summary>
    public void Validate(ClusterGeometry geometry, Func<DeadKey, long?> clusterOf)
    {
        foreach (var (top, layer) in _byTop)
        {
            if (!geometry.HasSubclusters) throw new CorruptImageException($"block {top.Block} is layered, but {geometry.ClusterSize}-byte clusters have no subclusters");
            ulong full = geometry.FullMask(top.Block);
            if ((layer.Mask & ~full) != 0 || layer.Mask == full)
                throw new CorruptImageException($"block {top.Block}: layer mask {layer.Mask:x} does not fit the block's subclusters ({full:x})");
            long? topCluster = clusterOf(top);
            if (topCluster is null) throw new CorruptImageException($"block {top.Block}: a layer names a mapping born in epoch {top.Birth} that does not exist");
            if (clusterOf(layer.UnderKey(top.Block)) != layer.UnderCluster || topCluster == layer.UnderCluster)
                throw new CorruptImageException($"block {top.Block}: the layer born in epoch {top.Birth} lies over cluster {layer.UnderCluster}, which no mapping born in epoch {layer.UnderBirth} holds");
        }
    }
}
