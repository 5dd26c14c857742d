using System.CommandLine;
using System.Diagnostics;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Images;
using CowDisk.Engine.Snapshots;

namespace CowDisk.Cli.Commands;

/// <summary>cowdisk snapshot create|list|delete|revert IMAGE [NAME]: internal snapshots, like qemu-img snapshot.</summary>
public static class SnapshotCommand
{
    public static Command Build()
    {
        var cmd = new Command("snapshot", "Create, list, delete or revert to internal snapshots of an image");
        cmd.Subcommands.Add(Change("create", "Freeze the disk as it is now under a name (O(1), whatever the data)",
            (img, name) => img.CreateSnapshot(name), "created snapshot"));
        cmd.Subcommands.Add(Change("delete", "Forget a snapshot and free the space only it holds",
            (img, name) => img.DeleteSnapshot(name), "deleted snapshot"));
        cmd.Subcommands.Add(Change("revert", "Make the disk read as the snapshot again (other snapshots stay)",
            (img, name) => img.RevertSnapshot(name), "reverted to snapshot"));
        cmd.Subcommands.Add(List());
        return cmd;
    }

    private static Command Change(string verb, string description, Func<CowImage, string, SnapshotInfo> action, string done)
    {
        var image = new Argument<string>("image") { Description = "The image (not IMAGE@SNAPSHOT)" };
        var name = new Argument<string>("name") { Description = "Snapshot name (no '@' or '/')" };
        var cmd = new Command(verb, description) { image, name };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            string path = RequireImage(r.GetValue(image)!);
            string snapshot = r.GetValue(name)!;
            if (verb == "create" && SnapshotInfo.Invalid(snapshot) is { } why) throw new CliException(why);
            var settings = GlobalOptions.Engine(r);
            if (AttachedDaemon.Writing(path) is { } attached)
            {
                // The daemon holds the image: it takes the snapshot in order with the device's writes, without a pause.
                if (verb == "revert")
                    throw new CliException($"{Path.GetFullPath(path)} is attached read-write as '{attached.Name}' (pid {attached.Pid}); detach it before reverting");
                var reply = AttachedDaemon.Ask(attached, new ControlRequest($"snapshot-{verb}", snapshot));
                Console.WriteLine($"{done} '{reply.Snapshot!.Name}' (id {reply.Snapshot.Id}) of {attached.Image} through attachment '{attached.Name}'");
                return 0;
            }
            if (verb == "create")
            {
                // A closed image: the snapshot changes no mapping, so none is loaded (the same few ms at any size).
                var sw0 = Stopwatch.StartNew();
                var made = CowImage.CreateSnapshot(path, snapshot, settings);
                Console.WriteLine($"{done} '{made.Name}' (id {made.Id}) of {ImageFiles.For(Path.GetFullPath(path)).DataPath} in {sw0.Elapsed.TotalMilliseconds:0.#} ms");
                return 0;
            }
            using var img = CowImage.Open(path, new ImageOpenOptions { Settings = settings });
            var sw = Stopwatch.StartNew();
            var snap = action(img, snapshot);
            sw.Stop();
            img.Dispose();
            Console.WriteLine($"{done} '{snap.Name}' (id {snap.Id}) of {img.Files.DataPath} in {sw.Elapsed.TotalMilliseconds:0.#} ms");
            return 0;
        }));
        return cmd;
    }

    private static Command List()
    {
        var image = new Argument<string>("image") { Description = "The image" };
        var output = new Option<string>("--output") { Description = "human or json", DefaultValueFactory = _ => "human" };
        output.AcceptOnlyFromAmong("human", "json");
        var cmd = new Command("list", "List snapshots: id, name, creation time, bytes held only by each") { image, output };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            string path = RequireImage(r.GetValue(image)!);
            IReadOnlyList<SnapshotInfo> list;
            string shown;
            if (AttachedDaemon.Writing(path) is { } attached)
            {
                list = AttachedDaemon.Ask(attached, new ControlRequest("snapshot-list")).Snapshots ?? [];
                shown = attached.Image;
            }
            else
            {
                using var img = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Settings = GlobalOptions.Engine(r) });
                list = img.ListSnapshots();
                shown = img.Files.DataPath;
            }
            if (r.GetValue(output) == "json")
            {
                CliJson.Print(list);   // id, name, created (UTC), exclusive-bytes: as in info
                return 0;
            }
            if (list.Count == 0) { Console.WriteLine($"{shown} has no snapshots"); return 0; }
            Console.WriteLine($"{"ID",-4} {"NAME",-24} {"CREATED (UTC)",-19} {"EXCLUSIVE",10}");
            foreach (var s in list)
                Console.WriteLine($"{s.Id,-4} {DisplayWidth.PadRight(s.Name, 24)} {s.CreatedUtc:yyyy-MM-dd HH:mm:ss} {(s.ExclusiveBytes < 0 ? "-" : ByteSize.Format(s.ExclusiveBytes)),10}");
            return 0;
        }));
        return cmd;
    }

    private static string RequireImage(string text)
    {
        var named = ImageRef.Parse(text);
        if (named.Snapshot is not null) throw new CliException($"name the image, not a snapshot view ({named})");
        return ImagePath.RequireNotFolder(named.Path);
    }
}
