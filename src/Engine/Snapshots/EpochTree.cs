using CowDisk.Engine.Devices;
using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Snapshots;

/// <summary>
/// The image's history as a tree of epochs. The head (the live disk) is a leaf epoch; a snapshot freezes the
/// head's epoch and the head moves to a new child; a revert gives the head a new epoch under the snapshot.
/// Epoch numbers only grow, and a child is always numbered above its parent, so along any root-to-leaf path
/// "ancestor of" is "numerically below". A mapping born in epoch b is seen by every epoch below b in the tree
/// until the epoch where the head dropped it (its death). Deleted snapshots keep their epoch while anything
/// below it remains; epochs nothing remains below are pruned.
/// </summary>
internal sealed class EpochTree
{
    public const long None = -1;

    private readonly Dictionary<uint, uint?> _parent = new();
    private readonly Dictionary<uint, List<uint>> _children = new();
    private readonly Dictionary<uint, SnapshotInfo> _snapshotAt = new();
    private readonly Dictionary<string, SnapshotInfo> _byName = new(StringComparer.Ordinal);

    // Changes since the last TakeChanges, for the next metadata commit.
    private readonly List<SnapshotInfo> _snapshotsAdded = new();
    private readonly List<SnapshotInfo> _snapshotsRemoved = new();
    private readonly List<uint> _nodesAdded = new();
    private readonly List<uint> _nodesRemoved = new();
    private readonly Dictionary<Guid, CloneRef> _clones = new();
    private readonly List<CloneRef> _clonesAdded = new();
    private readonly List<CloneRef> _clonesRemoved = new();

    public uint Head { get; private set; }

    /// <summary>Every epoch has been handed out: no snapshot or revert can take a new one.</summary>
    public bool Exhausted => NextEpoch > MappingEntry.MaxEpoch;
    public static string ExhaustedMessage => $"the image has used all {MappingEntry.MaxEpoch + 1} epochs; copy it (convert) to take more snapshots";
    public uint NextEpoch { get; private set; }

    /// <summary>
    /// The deepest strict ancestor of the head with a snapshot at or below it, or <see cref="None"/>. A live
    /// mapping born at or below this epoch is read by a snapshot and must be copied before it is overwritten;
    /// one born after it is the head's alone.
    /// </summary>
    public long SharedThrough { get; private set; } = None;

    public IReadOnlyCollection<SnapshotInfo> Snapshots => _snapshotAt.Values;
    public int SnapshotCount => _snapshotAt.Count;
    public IEnumerable<(uint Epoch, uint? Parent)> Nodes => _parent.Select(p => (p.Key, p.Value));

    /// <summary>A history with only the head (images without snapshots).</summary>
    public EpochTree(uint head, uint nextEpoch)
    {
        Head = head;
        NextEpoch = Math.Max(nextEpoch, head + 1);
        _parent[head] = null;
    }

    /// <summary>Rebuilds the tree as stored; throws CorruptImageException if it is not a tree holding the head and every snapshot.</summary>
    public static EpochTree Load(uint head, uint nextEpoch, IEnumerable<(uint Epoch, long Parent)> nodes, IEnumerable<SnapshotInfo> snapshots)
    {
        var tree = new EpochTree(head, nextEpoch);
        var list = nodes.ToList();
        if (list.Count > 0)
        {
            tree._parent.Clear();
            foreach (var (epoch, parent) in list)
            {
                if (epoch > MappingEntry.MaxEpoch || epoch >= tree.NextEpoch)   // (NextEpoch may be MaxEpoch + 1)
                    throw new CorruptImageException($"epoch {epoch} is out of range (next epoch {tree.NextEpoch})");
                if (parent != None && (parent < 0 || parent >= epoch))
                    throw new CorruptImageException($"epoch {epoch} has parent {parent}, which is not an older epoch");
                if (!tree._parent.TryAdd(epoch, parent == None ? null : (uint)parent))
                    throw new CorruptImageException($"epoch {epoch} is stored twice");
            }
            foreach (var (epoch, parent) in tree._parent)
            {
                if (parent is not { } p) continue;
                if (!tree._parent.ContainsKey(p)) throw new CorruptImageException($"epoch {epoch} has parent {p}, which does not exist");
                tree.ChildrenOf(p).Add(epoch);
            }
            if (tree._parent.Count(n => n.Value is null) != 1) throw new CorruptImageException("epoch tree does not have exactly one root");
            if (!tree._parent.ContainsKey(head)) throw new CorruptImageException($"head epoch {head} is not in the epoch tree");
            if (tree._children.ContainsKey(head)) throw new CorruptImageException($"head epoch {head} has epochs below it");
        }
        foreach (var s in snapshots)
        {
            if (!tree._parent.ContainsKey(s.Epoch)) throw new CorruptImageException($"snapshot '{s.Name}' names epoch {s.Epoch}, which is not in the epoch tree");
            if (s.Epoch == head) throw new CorruptImageException($"snapshot '{s.Name}' names the head's epoch {head}");
            if (!tree._snapshotAt.TryAdd(s.Epoch, s)) throw new CorruptImageException($"two snapshots freeze epoch {s.Epoch}");
            if (!tree._byName.TryAdd(s.Name, s)) throw new CorruptImageException($"two snapshots are named '{s.Name}'");
        }
        tree.Recompute();
        return tree;
    }

    public bool Contains(uint epoch) => _parent.ContainsKey(epoch);

    public IReadOnlyList<uint> Children(uint epoch) => _children.TryGetValue(epoch, out var list) ? list : [];

    public IEnumerable<CloneRef> ClonesOf(uint epoch) => _clones.Values.Where(c => c.Epoch == epoch);

    public IReadOnlyCollection<CloneRef> Clones => _clones.Values;

    /// <summary>Records an image made from a snapshot; loading stored ones too.</summary>
    public void AddClone(CloneRef clone, bool stored = false)
    {
        if (!_snapshotAt.ContainsKey(clone.Epoch)) throw new CorruptImageException($"clone {clone.Path} names epoch {clone.Epoch}, which is no snapshot");
        _clones[clone.Id] = clone;
        if (!stored) _clonesAdded.Add(clone);
    }

    public void RemoveClone(CloneRef clone)
    {
        if (_clones.Remove(clone.Id)) _clonesRemoved.Add(clone);
    }

    public (List<CloneRef> Added, List<CloneRef> Removed) TakeCloneChanges()
    {
        var added = _clonesAdded.Where(c => _clones.TryGetValue(c.Id, out var now) && now == c).ToList();
        var removed = _clonesRemoved.Where(c => !_clones.ContainsKey(c.Id)).ToList();
        _clonesAdded.Clear(); _clonesRemoved.Clear();
        return (added, removed);
    }

    public uint? ParentOf(uint epoch) => _parent.TryGetValue(epoch, out var p) ? p : null;

    /// <summary>By name (compared exactly, code unit by code unit), or by id when no name matches.</summary>
    public SnapshotInfo? Find(string name) =>
        _byName.GetValueOrDefault(name) ??
        (int.TryParse(name, System.Globalization.NumberStyles.None, null, out int id) ? _snapshotAt.Values.FirstOrDefault(s => s.Id == id) : null);

    public SnapshotInfo? SnapshotAt(uint epoch) => _snapshotAt.GetValueOrDefault(epoch);

    public bool IsSnapshot(uint epoch) => _snapshotAt.ContainsKey(epoch);

    /// <summary>a is x or above it. Unknown (pruned) epochs are ancestors of nothing.</summary>
    public bool IsAncestorOrSelf(uint a, uint x)
    {
        if (!_parent.ContainsKey(a)) return false;
        uint? cur = x;
        while (cur is { } c && c >= a)
        {
            if (c == a) return true;
            cur = _parent.GetValueOrDefault(c);
        }
        return false;
    }

    /// <summary>Whether a mapping born at birth and dropped at deaths is read at epoch x.</summary>
    public bool Sees(uint x, uint birth, ReadOnlySpan<uint> deaths)
    {
        if (!IsAncestorOrSelf(birth, x)) return false;
        foreach (uint d in deaths)
            if (IsAncestorOrSelf(d, x)) return false;
        return true;
    }

    /// <summary>The epochs from x up to the root, x first.</summary>
    public IEnumerable<uint> PathToRoot(uint x)
    {
        uint? cur = x;
        while (cur is { } c) { yield return c; cur = _parent.GetValueOrDefault(c); }
    }

    /// <summary>The snapshots at or below epoch b that have no other snapshot between them and b.</summary>
    public List<uint> SnapshotFrontier(uint b)
    {
        var result = new List<uint>();
        if (!_parent.ContainsKey(b)) return result;
        var stack = new Stack<uint>();
        stack.Push(b);
        while (stack.Count > 0)
        {
            uint n = stack.Pop();
            if (_snapshotAt.ContainsKey(n)) { result.Add(n); continue; }
            if (_children.TryGetValue(n, out var kids)) foreach (uint k in kids) stack.Push(k);
        }
        return result;
    }

    /// <summary>Freezes the head as a snapshot; the head moves to a new epoch below it. O(1).</summary>
    public SnapshotInfo Create(string name, DateTime createdUtc)
    {
        if (Exhausted) throw new InvalidOperationException(ExhaustedMessage);
        int id = _snapshotAt.Count == 0 ? 1 : _snapshotAt.Values.Max(s => s.Id) + 1;
        // Milliseconds, as LiteDB keeps them: the same time whether read back or just made.
        var created = new DateTime(createdUtc.Ticks - createdUtc.Ticks % TimeSpan.TicksPerMillisecond, DateTimeKind.Utc);
        var snap = new SnapshotInfo(id, name, Head, created);
        _snapshotAt.Add(Head, snap);
        _byName.Add(name, snap);
        _snapshotsAdded.Add(snap);
        uint old = Head;
        AddNode(NextEpoch++, old);
        Head = NextEpoch - 1;
        SharedThrough = old;
        return snap;
    }

    /// <summary>Forgets a snapshot; returns the epochs pruned because nothing remains at or below them.</summary>
    public List<uint> Delete(SnapshotInfo snap)
    {
        _snapshotAt.Remove(snap.Epoch);
        _byName.Remove(snap.Name);
        _snapshotsRemoved.Add(snap);
        var pruned = Prune();
        Recompute();
        return pruned;
    }

    /// <summary>Moves the head to a new epoch under the snapshot; returns the old head and the epochs pruned.</summary>
    public (uint OldHead, List<uint> Pruned) Revert(SnapshotInfo snap)
    {
        if (Exhausted) throw new InvalidOperationException(ExhaustedMessage);
        uint old = Head;
        AddNode(NextEpoch++, snap.Epoch);
        Head = NextEpoch - 1;
        var pruned = Prune();
        Recompute();
        return (old, pruned);
    }

    /// <summary>The deepest epoch that is an ancestor of (or equal to) both a and b.</summary>
    public uint CommonAncestor(uint a, uint b)
    {
        var above = new HashSet<uint>(PathToRoot(a));
        foreach (uint n in PathToRoot(b)) if (above.Contains(n)) return n;
        throw new CorruptImageException($"epochs {a} and {b} have no common ancestor");
    }

    private void AddNode(uint epoch, uint parent)
    {
        _parent.Add(epoch, parent);
        ChildrenOf(parent).Add(epoch);
        _nodesAdded.Add(epoch);
    }

    /// <summary>What changed since the last call: for the metadata commit that makes it durable.</summary>
    public (List<SnapshotInfo> Added, List<SnapshotInfo> Removed, List<(uint Epoch, uint? Parent)> NodesAdded, List<uint> NodesRemoved) TakeChanges()
    {
        var added = _snapshotsAdded.Where(s => _snapshotAt.TryGetValue(s.Epoch, out var now) && now == s).ToList();
        var removed = _snapshotsRemoved.Where(s => !_snapshotsAdded.Contains(s)).ToList();
        var nodesAdded = _nodesAdded.Where(_parent.ContainsKey).Select(n => (n, _parent[n])).ToList();
        var nodesRemoved = _nodesRemoved.Where(n => !_nodesAdded.Contains(n)).ToList();
        _snapshotsAdded.Clear(); _snapshotsRemoved.Clear(); _nodesAdded.Clear(); _nodesRemoved.Clear();
        return (added, removed, nodesAdded, nodesRemoved);
    }

    /// <summary>Every epoch, for the first commit of an image that had none stored.</summary>
    public void MarkAllNodesNew() => _nodesAdded.AddRange(_parent.Keys.Except(_nodesAdded));

    private List<uint> ChildrenOf(uint epoch)
    {
        if (!_children.TryGetValue(epoch, out var list)) _children[epoch] = list = new List<uint>();
        return list;
    }

    /// <summary>Removes every epoch with neither a snapshot nor the head at or below it.</summary>
    private List<uint> Prune()
    {
        var keep = new HashSet<uint>();
        foreach (uint s in _snapshotAt.Keys.Append(Head))
            foreach (uint n in PathToRoot(s))
                if (!keep.Add(n)) break;
        var pruned = _parent.Keys.Where(n => !keep.Contains(n)).ToList();
        foreach (uint n in pruned)
        {
            if (_parent[n] is { } p && _children.TryGetValue(p, out var siblings)) siblings.Remove(n);
            _parent.Remove(n);
            _children.Remove(n);
            _nodesRemoved.Add(n);
        }
        // The root may have lost its last branch but one: it stays (births above that branch refer to it).
        return pruned;
    }

    private void Recompute()
    {
        SharedThrough = None;
        var marked = new HashSet<uint>();
        foreach (uint s in _snapshotAt.Keys)
            foreach (uint n in PathToRoot(s))
                if (!marked.Add(n)) break;
        foreach (uint a in PathToRoot(Head).Skip(1))
            if (marked.Contains(a)) { SharedThrough = a; break; }
    }
}
