using System.CommandLine;
using CowDisk.Engine.Images;
using CowDisk.Format.Image;

namespace CowDisk.Cli.Commands;

/// <summary>cowdisk create IMAGE --size N [--cluster-size N] [--backing BASE | --from IMAGE@SNAPSHOT] [--force]</summary>
public static class CreateCommand
{
    private static bool IsCowDisk(string path) => !File.Exists(path) || BaseImage.Probe(path) == BaseImage.CowDiskFormat;

    public static Command Build()
    {
        var image = new Argument<string>("image") { Description = "Path of the new image (its data file)" };
        var size = new Option<string?>("--size", "-s") { Description = "Virtual size: bytes or 512M, 10G, 1T (default: the backing image's size)" };
        var cluster = new Option<string?>("--cluster-size") { Description = "Cluster size, a power of two from 4K to 2M (default 64K)" };
        var backing = new Option<string?>("--backing", "-b") { Description = "Read-only base image (raw, cowdisk or qcow2); relative to the new image's folder" };
        var backingFormat = new Option<string?>("--backing-format", "-F") { Description = "The base's format: raw reads it raw whatever it looks like (default: probed, raw only if nothing else matches)" };
        backingFormat.AcceptOnlyFromAmong("raw", "cowdisk", "qcow2");
        var force = new Option<bool>("--force") { Description = "Replace an existing image (or reuse a data device that holds another image's extents)" };
        var device = new Option<string?>("--data-device") { Description = "Block device to hold the extents (held exclusively while open); the image file keeps only the header" };
        var from = new Option<string?>("--from") { Description = "Make a writable clone of a snapshot (IMAGE@SNAPSHOT), sharing its extents" };
        var cmd = new Command("create", "Create an image, optionally as an overlay on a base or a clone of a snapshot") { image, size, cluster, backing, backingFormat, from, force, device };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var settings = GlobalOptions.Engine(r);
            long bytes = r.GetValue(size) is { } s ? ByteSize.Parse(s) : 0;
            if (r.GetValue(size) is not null && bytes == 0) throw new CliException("size must be greater than zero");
            int clusterSize = ClusterGeometry.DefaultClusterSize;
            if (r.GetValue(cluster) is { } c)
            {
                long cs = ByteSize.Parse(c, "cluster size");
                if (cs > int.MaxValue || !ClusterGeometry.IsValidClusterSize((uint)cs))
                    throw new CliException($"cluster size must be a power of two from 4K to 2M, not {c}");
                clusterSize = (int)cs;
            }
            string? clone = r.GetValue(from);
            if (clone is not null && r.GetValue(backing) is not null) throw new CliException("--from and --backing exclude each other (a clone's backing is its snapshot)");
            // --backing IMAGE@SNAPSHOT is a clone too: it must be registered so the snapshot stays while it exists.
            string folder = Path.GetDirectoryName(Path.GetFullPath(r.GetValue(image)!))!;
            if (clone is null && r.GetValue(backing) is { } b && ImageRef.Parse(Path.Combine(folder, b)) is { Snapshot: not null } named0 && IsCowDisk(named0.Path))
                clone = Path.Combine(folder, b);
            // A qcow2 snapshot is read like any base (cowdisk cannot register a clone inside a qcow2): a plain overlay.
            string? plainBacking = r.GetValue(backing);
            if (clone is not null && ImageRef.Parse(clone) is { Snapshot: { } qsnap } q && !IsCowDisk(q.Path) && File.Exists(q.Path))
            {
                plainBacking = Path.GetRelativePath(folder, Path.GetFullPath(q.Path)) + "@" + qsnap;
                clone = null;
            }
            if (bytes == 0 && plainBacking is null && clone is null) throw new CliException("--size is required when there is no --backing image");
            string path = ImagePath.RequireNotFolder(r.GetValue(image)!);
            var options = new ImageCreateOptions
            {
                Size = bytes, ClusterSize = clusterSize, BackingPath = clone is null ? plainBacking : null, Force = r.GetValue(force),
                DataDevice = r.GetValue(device), BackingFormat = r.GetValue(backingFormat),
            };
            if (options.BackingFormat is not null && options.BackingPath is null) throw new CliException("--backing-format needs --backing");
            CowImage img;
            if (clone is not null)
            {
                var named = ImageRef.Parse(clone);
                if (named.Snapshot is null) throw new CliException($"--from names a snapshot: IMAGE@SNAPSHOT, not {clone}");
                // An image attached read-write registers the clone through its daemon, which also serves the snapshot.
                img = CowImage.CreateClone(path, named, options, settings, CowDisk.Engine.Frontends.Attach.CloneRegistration.Through(named.Path));
            }
            else img = CowImage.Create(path, options, settings);
            using var _ = img;
            Console.WriteLine($"Formatting '{path}', fmt=cowdisk size={img.Size} cluster_size={img.Geometry.ClusterSize}" +
                              (img.BackingFile is null ? "" : $" backing_file={img.BackingFile} backing_fmt={img.GetInfo().BackingFormat}") +
                              (img.DataDevice is null ? "" : $" data_device={img.DataDevice}"));
            return 0;
        }));
        return cmd;
    }
}
