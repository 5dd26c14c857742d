using System.CommandLine;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Cli.Commands;

/// <summary>check, map and diff: read-only looks at an image's mappings (check writes only with --repair).</summary>
public static class InspectCommands
{
    private static Option<string> OutputOption()
    {
        var output = new Option<string>("--output") { Description = "human or json", DefaultValueFactory = _ => "human" };
        output.AcceptOnlyFromAmong("human", "json");
        return output;
    }

    public static Command Check()
    {
        var image = new Argument<string>("image") { Description = "Image to check" };
        var repair = new Option<bool>("--repair", "-r") { Description = "Give back the host space of leaked clusters (never touches data)" };
        var output = OutputOption();
        var cmd = new Command("check", "Check an image's consistency: exit 0 clean, 2 corruption, 3 leaks only (like qemu-img check)") { image, repair, output };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var named = ImageRef.Parse(r.GetValue(image)!);
            if (named.Snapshot is not null) throw new CliException($"check the image, not a snapshot view ({named})");
            string path = ImagePath.RequireNotFolder(named.Path);
            if (!File.Exists(path)) throw new CliException($"image {Path.GetFullPath(path)} does not exist");
            string format;
            try { format = BaseImage.Probe(path); }
            catch (CorruptImageException) { format = BaseImage.CowDiskFormat; }   // a damaged cowdisk image: the open below reports it
            if (format != BaseImage.CowDiskFormat)
                throw new CliException($"{Path.GetFullPath(path)} is not a cowdisk image ({format}): nothing to check");
            bool fix = r.GetValue(repair);
            CheckReport report;
            try
            {
                using var img = CowImage.Open(path, new ImageOpenOptions { ReadOnly = !fix, Settings = GlobalOptions.Engine(r) });
                report = img.Check(fix);
            }
            catch (CorruptImageException e)
            {
                report = new CheckReport { Path = Path.GetFullPath(path) };
                report.Corruptions.Add(e.Message);
            }
            if (r.GetValue(output) == "json")
            {
                bool counted = report.ClusterSize > 0;   // unknown (null) when the image could not be opened far enough to count
                CliJson.Print(new CheckOutput(report.Path, "cowdisk", 0, report.Corruptions.Count, report.LeakedClusters, report.LeaksFixed,
                    counted ? report.TotalClusters : null, counted ? report.DataClusters : null, counted ? report.SnapshotOnlyClusters : null,
                    counted ? report.FreeClusters : null, counted ? report.Snapshots : null, counted ? report.ClusterSize : null,
                    counted ? report.ImageEndOffset : null, report.Corruptions));
                return report.ExitCode;
            }
            foreach (var c in report.Corruptions) Console.WriteLine($"ERROR {c}");
            if (report.Corruptions.Count > 0)
                Console.WriteLine($"\n{report.Corruptions.Count} {(report.Corruptions.Count == 1 ? "error was" : "errors were")} found on the image.\nData may be corrupted, or further writes to the image may corrupt it.");
            if (report.LeakedClusters > 0 && report.LeaksFixed < report.LeakedClusters)
                Console.WriteLine($"\n{report.LeakedClusters} leaked {(report.LeakedClusters == 1 ? "cluster was" : "clusters were")} found on the image.\nThis means waste of disk space, but no harm to data.");
            if (report.LeaksFixed > 0) Console.WriteLine($"{report.LeaksFixed} leaked clusters were repaired (their host space given back).");
            if (report.Corruptions.Count == 0 && report.LeakedClusters == report.LeaksFixed) Console.WriteLine("No errors were found on the image.");
            if (report.ClusterSize > 0)
            {
                Console.WriteLine($"{report.DataClusters} data clusters, {report.SnapshotOnlyClusters} held only by snapshots ({report.Snapshots}), {report.FreeClusters} free");
                Console.WriteLine($"Image end offset: {report.ImageEndOffset}");
            }
            return report.ExitCode;
        }));
        return cmd;
    }

    public static Command Map()
    {
        var image = new Argument<string>("image") { Description = "Image, or IMAGE@SNAPSHOT" };
        var output = OutputOption();
        var cmd = new Command("map", "Show where each range of the disk reads from: own, shared with a snapshot, zero, base, unallocated") { image, output };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var named = ImageRef.Parse(r.GetValue(image)!);
            List<MapRun> runs;
            if (named.Snapshot is null && AttachedDaemon.Writing(ImagePath.RequireNotFolder(named.Path)) is { } attached)
                runs = AttachedDaemon.Ask(attached, new CowDisk.Engine.Frontends.Attach.ControlRequest("map")).Runs ?? [];   // the running disk, from its daemon
            else
            {
                using var device = BaseImage.OpenForReading(named with { Path = ImagePath.RequireNotFolder(named.Path) }, GlobalOptions.Engine(r));
                runs = device is CowImage img ? img.Map() : BaseImage.Map(device);   // a snapshot view, qcow2 or raw too
            }
            if (r.GetValue(output) == "json")
            {
                CliJson.Print(runs.Select(x => new MapOutput(x.Start, x.Length, x.Depth,
                    Present: x.Source != MapSource.Unallocated,
                    Zero: x.Source is MapSource.Zero or MapSource.Unallocated,
                    Data: x.Source is MapSource.Own or MapSource.Shared or MapSource.Base,
                    Offset: x.FileOffset, Source: SourceName(x.Source), File: x.File)));
                return 0;
            }
            Console.WriteLine($"{"Offset",-18} {"Length",-18} {"Source",-12} {"Depth",5}  {"Mapped to",-18} File");
            foreach (var x in runs)
                Console.WriteLine($"0x{x.Start,-16:x} 0x{x.Length,-16:x} {SourceName(x.Source),-12} {x.Depth,5}  {(x.FileOffset is { } o ? $"0x{o:x}" : ""),-18} {x.File}");
            return 0;
        }));
        return cmd;
    }

    private static string SourceName(MapSource s) => s switch
    {
        MapSource.Own => "own",
        MapSource.Shared => "shared",
        MapSource.Zero => "zero",
        MapSource.Base => "base",
        _ => "unallocated",
    };

    public static Command Diff()
    {
        var from = new Argument<string>("from") { Description = "IMAGE@SNAPSHOT (or IMAGE for the live disk)" };
        var to = new Argument<string>("to") { Description = "The same image: IMAGE@SNAPSHOT, or IMAGE for the live disk" };
        var output = OutputOption();
        var cmd = new Command("diff", "List the byte ranges that differ between two points of one image's history") { from, to, output };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var a = ImageRef.Parse(r.GetValue(from)!);
            var b = ImageRef.Parse(r.GetValue(to)!);
            foreach (var x in new[] { a, b })
                if (!File.Exists(x.Path)) throw new CliException($"image {Path.GetFullPath(x.Path)} does not exist");
            string pathA = Path.GetFullPath(ImagePath.RequireNotFolder(a.Path)), pathB = Path.GetFullPath(ImagePath.RequireNotFolder(b.Path));
            if (ImageFiles.For(pathA).DataPath != ImageFiles.For(pathB).DataPath)
                throw new CliException($"diff compares two points of one image; {a} and {b} are different images");
            List<(long Offset, long Length)> ranges;
            if (AttachedDaemon.Writing(pathA) is { } attached)   // the running disk: its daemon holds the mappings
                ranges = (AttachedDaemon.Ask(attached, new CowDisk.Engine.Frontends.Attach.ControlRequest("diff", a.Snapshot, b.Snapshot)).Ranges ?? [])
                    .Select(x => (x[0], x[1])).ToList();
            else
            {
                using var img = CowImage.Open(pathA, new ImageOpenOptions { ReadOnly = true, Settings = GlobalOptions.Engine(r) });
                ranges = img.Diff(a.Snapshot, b.Snapshot);
            }
            long total = ranges.Sum(x => x.Length);
            if (r.GetValue(output) == "json")
            {
                CliJson.Print(new DiffOutput(a.ToString(), b.ToString(), total, ranges.Select(x => new DiffRangeOutput(x.Offset, x.Length))));
                return 0;
            }
            foreach (var (offset, length) in ranges) Console.WriteLine($"0x{offset:x} 0x{length:x}");
            Console.WriteLine($"{ranges.Count} {(ranges.Count == 1 ? "range" : "ranges")} of whole clusters, {ByteSize.Format(total)} ({total} bytes), " +
                              $"written or discarded between {a} and {b}");
            return 0;
        }));
        return cmd;
    }
}
