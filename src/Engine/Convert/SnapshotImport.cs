using CowDisk.Engine.Images;
using CowDisk.Engine.Images.Qcow2;
using CowDisk.Engine.Snapshots;

namespace CowDisk.Engine.Convert;

/// <summary>
/// convert --with-snapshots: a qcow2's internal snapshots become cowdisk snapshots. The oldest is written
/// first and snapshotted, then each later one (and last the live disk) writes only what differs from the one
/// before: ranges whose qcow2 mapping changed (another host cluster, data became zero or the other way).
/// Snapshots share the extents they did not change, as in the source.
/// </summary>
internal static class SnapshotImport
{
    public sealed record Result(long DataBytes, long WrittenBytes, int Snapshots);

    public static Result Run(Qcow2Image head, CowDiskTarget target, int granule, Action<long, long>? progress, CancellationToken cancel)
    {
        foreach (var snapshot in head.Snapshots)
        {
            if (snapshot.VirtualSize != head.Size)
                throw new ImageOpenException($"snapshot '{snapshot.Name}' is {snapshot.VirtualSize} bytes and the disk {head.Size}: cowdisk snapshots share the disk's size");
            if (SnapshotInfo.Invalid(snapshot.Name) is { } why) throw new ImageOpenException($"qcow2 snapshot '{snapshot.Name}' cannot keep its name in cowdisk: {why}");
        }
        if (head.Snapshots.Select(s => s.Name).Distinct().Count() != head.Snapshots.Count)
            throw new ImageOpenException("the qcow2 has two snapshots of one name; cowdisk snapshot names are unique");

        // Plan every pass first (maps are cheap) so progress knows the total.
        var views = new List<(Qcow2Image Device, string? Name)>();
        try
        {
            foreach (var snapshot in head.Snapshots)
                views.Add((Qcow2Image.Open(head.Path, new Qcow2OpenOptions { Snapshot = snapshot.Id }), snapshot.Name));
            views.Add((head, null));
            var passes = new List<(Qcow2Image Device, string? Name, List<(long, long)> Data, List<(long, long)> Zeros)>();
            List<MapRun> before = [new MapRun(0, head.Size, MapSource.Unallocated, 0, null, null)];
            foreach (var (device, name) in views)
            {
                var after = device.Map();
                var (data, zeros) = Changes(before, after);
                passes.Add((device, name, ImageConverter.Align(data, granule, head.Size), zeros));
                before = after;
            }
            long total = passes.Sum(p => p.Data.Sum(r => r.Item2)), done = 0, written = 0;
            foreach (var (device, name, data, zeros) in passes)
            {
                foreach (var (offset, length) in zeros) target.Zero(offset, length);
                written += ImageConverter.Copy(device, data, target, granule, total, progress, zeroSkipped: true, doneBefore: done, cancel: cancel);
                done += data.Sum(r => r.Item2);
                if (name is not null) target.Image.CreateSnapshot(name);
            }
            return new Result(total, written, head.Snapshots.Count);
        }
        finally
        {
            foreach (var (device, _) in views) if (device != head) device.Dispose();
        }
    }

    /// <summary>
    /// Where after reads differently from before: data ranges to copy, and ranges that are data in before but
    /// zeros (or unallocated) in after. Equal mappings (the same host cluster, or zeros both) are left alone; a
    /// compressed cluster has no host offset to compare, so it is copied again.
    /// </summary>
    internal static (List<(long Offset, long Length)> Data, List<(long Offset, long Length)> Zeros) Changes(List<MapRun> before, List<MapRun> after)
    {
        var data = new List<(long, long)>();
        var zeros = new List<(long, long)>();
        int i = 0, j = 0;
        long at = 0, end = Math.Min(before.Count == 0 ? 0 : before[^1].Start + before[^1].Length, after.Count == 0 ? 0 : after[^1].Start + after[^1].Length);
        while (at < end && i < before.Count && j < after.Count)
        {
            var b = before[i];
            var a = after[j];
            long segmentEnd = Math.Min(b.Start + b.Length, a.Start + a.Length);
            bool bData = IsData(b), aData = IsData(a);
            bool same = !bData && !aData
                        || (bData && aData && b.FileOffset is { } bo && a.FileOffset is { } ao && b.File == a.File && b.Depth == a.Depth
                            && bo + (at - b.Start) == ao + (at - a.Start));
            if (!same) Add(aData ? data : zeros, at, segmentEnd - at);
            at = segmentEnd;
            if (at >= b.Start + b.Length) i++;
            if (at >= a.Start + a.Length) j++;
        }
        return (data, zeros);
    }

    private static bool IsData(MapRun run) => run.Source is not (MapSource.Zero or MapSource.Unallocated);

    private static void Add(List<(long Offset, long Length)> list, long offset, long length)
    {
        if (list.Count > 0 && list[^1].Offset + list[^1].Length == offset) list[^1] = (list[^1].Offset, list[^1].Length + length);
        else list.Add((offset, length));
    }
}
