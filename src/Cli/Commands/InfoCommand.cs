using System.CommandLine;
using CowDisk.Engine.Images;

namespace CowDisk.Cli.Commands;

/// <summary>cowdisk info IMAGE [--output human|json]: sizes, files and the whole backing chain.</summary>
public static class InfoCommand
{
    public static Command Build()
    {
        var image = new Argument<string>("image") { Description = "Image to describe" };
        var output = new Option<string>("--output") { Description = "human or json", DefaultValueFactory = _ => "human" };
        output.AcceptOnlyFromAmong("human", "json");
        var cmd = new Command("info", "Show an image's sizes, files and backing chain") { image, output };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            GlobalOptions.Engine(r);   // settings checked, and the base-path policy (Engine:AllowAnyBackingPath) applied
            var info = ImageInspector.Inspect(r.GetValue(image)!);
            // Held by a running attachment: its daemon knows the snapshots.
            if (info.InUse && AttachedDaemon.Writing(info.Path) is { } attached)
                info = info with { Snapshots = AttachedDaemon.Ask(attached, new CowDisk.Engine.Frontends.Attach.ControlRequest("snapshot-list")).Snapshots };
            if (r.GetValue(output) == "json") CliJson.Print(info);
            else WriteHuman(info);
            return 0;
        }));
        return cmd;
    }

    private static void WriteHuman(ImageInfo info)
    {
        for (var layer = info; layer is not null; layer = layer.Backing)
        {
            if (layer != info) Console.WriteLine();
            Console.WriteLine($"image: {layer.Path}");
            Console.WriteLine($"file format: {layer.Format}");
            if (layer.FormatVersion is { } version && layer.Format == BaseImage.Qcow2Format) Console.WriteLine($"compat: {(version >= 3 ? "1.1" : "0.10")} (version {version})");
            Console.WriteLine($"virtual size: {ByteSize.Format(layer.VirtualSize)} ({layer.VirtualSize} bytes)");
            Console.WriteLine($"disk size: {ByteSize.Format(layer.DiskBytes)}");
            if (layer.ClusterSize is { } cs) Console.WriteLine($"cluster_size: {cs}");
            if (layer.AllocatedBytes is { } a) Console.WriteLine($"allocated: {ByteSize.Format(a)} ({a} bytes)");
            if (layer.ImageId is { } id) Console.WriteLine($"image id: {id}");
            if (layer.Clean is { } clean) Console.WriteLine($"clean shutdown: {(clean ? "yes" : "no")}");
            if (layer.InUse) Console.WriteLine("in use: yes (open for writing by another process; allocation not shown)");
            if (layer.DataDevice is not null) Console.WriteLine($"data device: {layer.DataDevice}");
            if (layer.BackingFile is not null)
            {
                Console.WriteLine($"backing file: {layer.BackingFile}" + (layer.Backing is null ? "" : $" (actual path: {layer.Backing.Path})"));
                Console.WriteLine($"backing file format: {layer.BackingFormat}");
            }
            if (layer.Snapshot is not null) Console.WriteLine($"snapshot: {layer.Snapshot} (read-only view)");
            Console.WriteLine("files:");
            foreach (var f in layer.Files) Console.WriteLine($"    {f}");
            if (layer.Snapshots is { Count: > 0 } snaps)
            {
                Console.WriteLine("Snapshot list:");
                Console.WriteLine($"{"ID",-4} {"NAME",-24} {"CREATED (UTC)",-19} {"EXCLUSIVE",10}");
                foreach (var s in snaps)
                    Console.WriteLine($"{s.Id,-4} {DisplayWidth.PadRight(s.Name, 24)} {s.CreatedUtc:yyyy-MM-dd HH:mm:ss} {(s.ExclusiveBytes < 0 ? "-" : ByteSize.Format(s.ExclusiveBytes)),10}");
            }
        }
    }
}
