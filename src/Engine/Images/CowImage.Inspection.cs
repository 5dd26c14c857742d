using CowDisk.Engine.Devices;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Snapshots;
using CowDisk.Engine.Storage;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Images;

// check, map and diff: read the mappings of a quiescent image (opened by the command itself).
public sealed partial class CowImage
{
    /// <summary>
    /// Verifies every invariant: mappings inside the data file, every cluster referenced once (by the disk or by
    /// the snapshots), every snapshot readable without a block mapped twice, free space exact. Host space held
    /// by unreferenced clusters is a leak; with repair (a writable open) it is punched out.
    /// </summary>
    public CheckReport Check(bool repair)
    {
        if (repair && ReadOnly) throw new ImageOpenException("repair needs the image open for writing");
        var report = new CheckReport
        {
            Path = Files.DataPath, ClusterSize = Geometry.ClusterSize, ImageEndOffset = _dataFile.Length, TotalClusters = Geometry.BlockCount,
        };
        var history = _viewedHistory ?? _responder.History;
        InvariantReport inv;
        try { inv = CheckInvariants(); }
        catch (CorruptImageException e) { report.Corruptions.Add(e.Message); return report; }
        report.FreeClusters = inv.FreeClusters;
        // Held only by snapshots: not the live disk's mapping, nor under a layer the live disk maps.
        long dead = history.DeadClusters().Count(d => !history.HeldByHead(d.Key));
        report.SnapshotOnlyClusters = dead;
        report.DataClusters = inv.MappedClusters - dead;
        report.Snapshots = history.Tree.SnapshotCount;
        foreach (var snap in history.Tree.Snapshots)
        {
            try { history.BuildView(snap.Epoch); }
            catch (CorruptImageException e) { report.Corruptions.Add($"snapshot '{snap.Name}': {e.Message}"); }
        }
        if (_dataFile is not HostStorageFile host) return report;   // a device's blocks cannot be told apart: no leaks to count
        var referenced = new HashSet<long>(_table.DataMappings().Select(m => m.Physical));
        referenced.UnionWith(history.DeadClusters().Select(d => d.Cluster));
        int shift = Geometry.ClusterShift;
        var leaks = new List<long>();
        foreach (var (offset, length) in host.DataRanges())
        {
            long first = Math.Max(ClusterGeometry.FirstDataCluster, offset >> shift);
            long end = (offset + length + Geometry.ClusterSize - 1) >> shift;
            for (long c = first; c < end; c++)
                if (!referenced.Contains(c)) leaks.Add(c);
        }
        // Dead extents no snapshot reads any more hold their clusters too (not punched: their metadata names them).
        report.UnreadSnapshotClusters = history.UnreadDeadClusters();
        report.LeakedClusters = leaks.Count + report.UnreadSnapshotClusters;
        if (repair)
        {
            // A crashed image's leaks were given back by this very (writable) open: report them as repaired.
            report.LeakedClusters += ReclaimedClusters;
            report.LeaksFixed += ReclaimedClusters;
            // Free already (free space is derived), so only the host space is given back.
            foreach (long c in leaks)
                if (_dataFile.PunchHole(c << shift, Geometry.ClusterSize)) report.LeaksFixed++;
            // Dead extents no snapshot reads are dropped from the metadata; their clusters are freed and punched once that is durable.
            if (report.UnreadSnapshotClusters > 0) report.LeaksFixed += DropUnreadDeadExtents();
            _dataFile.Flush();   // the punched holes durable before check reports them fixed
        }
        return report;
    }

    /// <summary>The virtual disk as runs of one source each (own, shared, zero, base, unallocated), like `qemu-img map`.</summary>
    public List<MapRun> Map() => MapRange(0, Size);

    /// <summary>The runs of [start, end), as <see cref="Map()"/> gives them for the whole disk.</summary>
    public List<MapRun> MapRange(long start, long end)
    {
        if (start < 0 || end > Size || start > end) throw new ArgumentOutOfRangeException(nameof(start), $"range {start}..{end} is outside the disk (size {Size})");
        if (ReadOnly) return Map(start, end, 0);
        List<MapRun> runs = [];
        OnResponder(() => runs = Map(start, end, 0));   // a writer's mappings change on the responder thread: read them there
        return runs;
    }

    /// <summary>Runs a read of the mappings on the responder thread, in ring order after every acknowledged write.</summary>
    private void OnResponder(Action body)
    {
        Submit(new ControlOp { Kind = ControlKind.Invoke, Name = "", Body = body }, "reading the mappings", changesMappings: false);
    }

    internal List<MapRun> Map(long start, long end, int depth)
    {
        var history = _responder.History;
        var runs = new List<MapRun>();
        int shift = Geometry.ClusterShift;
        long block = start >> shift;
        while (start < end)
        {
            long blockEnd = Math.Min(end, (block + 1) << shift);
            var m = _table.GetMapping(block);
            switch (m.Source)
            {
                case MappingSource.Data:
                    // The live disk: shared when a snapshot reads it too. A snapshot's view: shared when the live disk
                    // or another snapshot reads the same cluster.
                    bool shared = Snapshot is null ? history.IsShared(m.Epoch) : _viewedHistory!.SharedBeyond(block, m.Epoch, m.PhysicalCluster);
                    var source = shared ? MapSource.Shared : MapSource.Own;
                    if (history.Layers.TryGet(block, m.Epoch, out var layer))
                    {
                        // Layered: its own subclusters, and the others in the cluster underneath (shared while a snapshot reads it).
                        var under = shared || Snapshot is not null || history.ReadBySnapshot(layer.UnderKey(block)) ? MapSource.Shared : MapSource.Own;
                        AppendLayered(runs, block, (int)(start - (block << shift)), (int)(blockEnd - (block << shift)), m.PhysicalCluster, layer, source, under, depth);
                        break;
                    }
                    long fileOffset = (m.PhysicalCluster << shift) + (start - (block << shift));
                    Append(runs, new MapRun(start, blockEnd - start, source, depth, fileOffset, DataDevice ?? Files.DataPath));
                    break;
                case MappingSource.Zero:
                    Append(runs, new MapRun(start, blockEnd - start, MapSource.Zero, depth, null, null));
                    break;
                default:
                    // Unmapped: the base below, if any, says what this range reads.
                    long runEnd = blockEnd;
                    while (runEnd < end && _table.Get(runEnd >> shift) == 0) runEnd = Math.Min(end, runEnd + Geometry.ClusterSize);
                    foreach (var r in MapBelow(start, runEnd, depth)) Append(runs, r);
                    blockEnd = runEnd;
                    break;
            }
            start = blockEnd;
            block = start >> shift;
        }
        return runs;
    }

    private IEnumerable<MapRun> MapBelow(long start, long end, int depth)
    {
        if (_base is null) return [new MapRun(start, end - start, MapSource.Unallocated, depth, null, null)];
        long baseEnd = Math.Clamp(_base.Size, start, end);
        var below = new List<MapRun>();
        if (baseEnd > start) below.AddRange(BaseImage.MapOf(_base, start, baseEnd, depth + 1));
        if (baseEnd < end) below.Add(new MapRun(baseEnd, end - baseEnd, MapSource.Unallocated, depth, null, null));   // past a smaller base: zeros
        return below;
    }

    private void AppendLayered(List<MapRun> runs, long block, int from, int to, long top, Layer layer, MapSource own, MapSource under, int depth) =>
        AppendLayered(runs, Geometry, block, from, to, top, layer, own, under, depth, DataDevice ?? Files.DataPath);

    /// <summary>Bytes [from, to) of a layered block as runs, each subcluster run from the cluster that holds it.</summary>
    internal static void AppendLayered(List<MapRun> runs, ClusterGeometry geometry, long block, int from, int to, long top, Layer layer,
        MapSource own, MapSource under, int depth, string file)
    {
        int shift = geometry.ClusterShift;
        for (int pos = from; pos < to;)
        {
            int len = geometry.SubclusterRun(layer.Mask, pos, to - pos, out bool inTop);
            long cluster = inTop ? top : layer.UnderCluster;
            Append(runs, new MapRun((block << shift) + pos, len, inTop ? own : under, depth, (cluster << shift) + pos, file));
            pos += len;
        }
    }

    internal static void Append(List<MapRun> runs, MapRun run)
    {
        if (runs.Count > 0 && runs[^1] is var last && last.Source == run.Source && last.Depth == run.Depth && last.File == run.File &&
            last.Start + last.Length == run.Start && (last.FileOffset is null ? run.FileOffset is null : last.FileOffset + last.Length == run.FileOffset))
            runs[^1] = last with { Length = last.Length + run.Length };
        else runs.Add(run);
    }

    /// <summary>
    /// Byte ranges that read differently between two points of this image's history: snapshots by name, null
    /// for the live disk. Costs what changed between them, not the disk size.
    /// </summary>
    public List<(long Offset, long Length)> Diff(string? from, string? to)
    {
        if (Snapshot is not null) throw new ImageOpenException("diff works on the image, not on a snapshot view");
        if (!ReadOnly) Flush();
        var history = _responder.History;
        uint Epoch(string? name) => name is null ? history.Head
            : (history.Tree.Find(name) ?? throw new ImageOpenException($"{Files.DataPath} has no snapshot named '{name}'")).Epoch;
        List<(long Block, ulong AtX, ulong AtY)> changed = [];
        if (ReadOnly) changed = history.Differences(Epoch(from), Epoch(to));
        else OnResponder(() => changed = history.Differences(Epoch(from), Epoch(to)));
        var ranges = new List<(long Offset, long Length)>();
        int shift = Geometry.ClusterShift;
        foreach (var (block, _, _) in changed)
        {
            long start = block << shift, length = Math.Min(Geometry.ClusterSize, Size - start);
            if (ranges.Count > 0 && ranges[^1].Offset + ranges[^1].Length == start) ranges[^1] = (ranges[^1].Offset, ranges[^1].Length + length);
            else ranges.Add((start, length));
        }
        return ranges;
    }
}
