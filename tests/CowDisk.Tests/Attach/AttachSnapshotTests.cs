using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using CowDisk.Tests.Cli;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Attach;

/// <summary>
/// A live snapshot of an attached, mounted ext4 under write load, taken through the daemon's control socket:
/// the snapshot attaches (read-only, and as a writable clone where the journal replays), e2fsck -fn finds it
/// clean after the replay, every file fsynced before the snapshot command started is in it with its contents,
/// and no file created after the command returned is.
/// </summary>
[Collection(AttachCollection.Name)]
public sealed class AttachSnapshotTests(ITestOutputHelper output)
{
    [AttachFact]
    public void A_live_snapshot_under_ext4_write_load_holds_every_file_fsynced_before_it()
    {
        using var scratch = new AttachScratch();
        // Room for the writer however long the snapshot takes on a loaded machine (it stops at 8,000 files, ~390 MB).
        string image = scratch.CreateImage("disk.img", "1G");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        CommandRunner.Check("mkfs.ext4", "-q", "-F", link);
        string mountPoint = scratch.Mount(link);

        // (name, sha, fsync ended, created) of each file the writer made durable.
        var files = new ConcurrentQueue<(string Name, string Sha, long FsyncEnded, long Created)>();
        using var stop = new CancellationTokenSource();
        Exception? writerError = null;
        var writer = new Thread(() =>
        {
            try
            {
                var random = new Random(7);
                for (int i = 0; !stop.IsCancellationRequested && i < 8000; i++)
                {
                    string file = $"f{i:D5}";
                    long created = Stopwatch.GetTimestamp();
                    var data = new byte[random.Next(1, 96 << 10)];
                    random.NextBytes(data);
                    using (var handle = File.OpenHandle(Path.Combine(mountPoint, file), FileMode.CreateNew, FileAccess.Write))
                    {
                        RandomAccess.Write(handle, data, 0);
                        Assert.Equal(0, Posix.Fsync(handle));
                    }
                    Assert.Equal(0, Posix.FsyncDirectory(mountPoint));
                    files.Enqueue((file, Convert.ToHexString(SHA256.HashData(data)), Stopwatch.GetTimestamp(), created));
                }
            }
            catch (Exception e) { writerError = e; }
        }) { IsBackground = true };
        writer.Start();
        Thread.Sleep(1500);
        long before = Stopwatch.GetTimestamp();
        var created = scratch.Cow("snapshot", "create", image, "live");
        long after = Stopwatch.GetTimestamp();
        Assert.True(created.ExitCode == 0, created.ToString());
        Assert.Contains($"through attachment '{name}'", created.Output);
        Thread.Sleep(700);
        stop.Cancel();
        writer.Join();
        Assert.Null(writerError);

        var list = scratch.Cow("snapshot", "list", image);
        Assert.Contains("live", list.Output);
        CliAssert.OneLineError(scratch.Cow("snapshot", "revert", image, "live"), $"attached read-write as '{name}'");
        CliAssert.OneLineError(scratch.Cow("io", image, "write", "0", "4K"), $"attached as '{name}'");
        // map and diff of the running disk come from its daemon.
        var map = scratch.Cow("map", image, "--output", "json");
        Assert.True(map.ExitCode == 0, map.ToString());
        Assert.Contains("\"shared\"", map.Output);
        var diff = scratch.Cow("diff", $"{image}@live", image);
        Assert.True(diff.ExitCode == 0, diff.ToString());
        Assert.Contains("written or discarded between", diff.Output);
        CliAssert.OneLineError(scratch.Cow("create", image, "--size", "1M", "--force"), $"attached as '{name}'");

        // While the disk is still attached and written: the snapshot attaches read-only (served through the
        // writer's daemon), cannot be deleted while that view is open, and a clone of it can be made and read.
        string viewName = scratch.NewName();
        string viewLink = scratch.Attach($"{image}@live", viewName);
        var viewSum = CommandRunner.Run("sha256sum", [viewLink]);
        var viewMap = scratch.Cow("map", $"{image}@live");   // served by the writer's daemon too
        Assert.True(viewMap.ExitCode == 0, viewMap.ToString());
        Assert.Contains("own", viewMap.Output);
        var viewInfo = scratch.Cow("info", $"{image}@live");
        Assert.True(viewInfo.ExitCode == 0, viewInfo.ToString());
        Assert.Contains("snapshot: live", viewInfo.Output);
        Assert.Equal(0, viewSum.ExitCode);
        CliAssert.OneLineError(scratch.Cow("snapshot", "delete", image, "live"), "reads a snapshot view");
        string clone = Path.Combine(scratch.Folder, "clone.img");
        var cloned = scratch.Cow("create", clone, "--from", $"{image}@live");
        Assert.True(cloned.ExitCode == 0, cloned.ToString());
        Assert.Equal(0, scratch.Cow("info", clone).ExitCode);
        Assert.Equal(0, scratch.Cow("map", clone).ExitCode);
        var cloneRead = scratch.Cow("io", clone, "read", "0", "1G");
        Assert.True(cloneRead.ExitCode == 0, cloneRead.ToString());
        Assert.Contains(viewSum.Output[..64].ToLowerInvariant(), cloneRead.Output);   // the clone reads as the snapshot
        scratch.Detach(viewName);
        CliAssert.OneLineError(scratch.Cow("snapshot", "delete", image, "live"), "base of clone");
        File.Delete(clone);
        foreach (var f in new[] { ".meta.db", ".meta.log" }) File.Delete(clone + f);
        scratch.Unmount(mountPoint);
        scratch.Detach(name);

        var durable = files.Where(f => f.FsyncEnded < before).ToList();
        var later = files.Where(f => f.Created > after).ToList();
        output.WriteLine($"{files.Count} files written, {durable.Count} fsynced before the snapshot, {later.Count} created after it");
        Assert.NotEmpty(durable);
        Assert.NotEmpty(later);

        // Read-only: the journal cannot replay here, so only look.
        string roName = scratch.NewName();
        string roLink = scratch.Attach($"{image}@live", roName);
        Assert.Equal("yes", Assert.Single(scratch.List(), s => s.Name == roName).ReadOnly ? "yes" : "no");
        scratch.Detach(roName);

        // A writable clone: the journal replays, then the file system is clean and holds the files.
        string cloneName = scratch.NewName();
        string cloneLink = scratch.Attach($"{image}@live", cloneName, "--overlay");
        var replay = CommandRunner.Run("e2fsck", ["-fy", cloneLink]);
        Assert.True(replay.ExitCode is 0 or 1, $"e2fsck -fy: {replay}");
        var check = CommandRunner.Run("e2fsck", ["-fn", cloneLink]);
        Assert.True(check.ExitCode == 0, $"e2fsck -fn after the replay: {check}");
        string cloneMount = scratch.Mount(cloneLink);
        foreach (var f in durable)
        {
            string path = Path.Combine(cloneMount, f.Name);
            Assert.True(File.Exists(path), $"{f.Name}, fsynced before the snapshot, is missing from it");
            Assert.Equal(f.Sha, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))));
        }
        foreach (var f in later)
            Assert.False(File.Exists(Path.Combine(cloneMount, f.Name)), $"{f.Name}, created after the snapshot returned, is in it");
        scratch.Unmount(cloneMount);
        scratch.Detach(cloneName);
        Assert.Equal(0, scratch.Cow("check", image).ExitCode);
    }

    /// <summary>
    /// A snapshot view served by a writer that has since detached keeps reading the right data, and while it is
    /// open neither the snapshot can be deleted nor the image replaced.
    /// </summary>
    [AttachFact]
    public void A_snapshot_view_outlives_its_writer_and_holds_off_delete_and_replace()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        CommandRunner.Check("dd", "if=/dev/urandom", $"of={link}", "bs=1M", "count=4", "oflag=direct", "status=none");
        Assert.Equal(0, scratch.Cow("snapshot", "create", image, "s").ExitCode);
        string expected = CommandRunner.Run("sh", ["-c", $"head -c 4M {link} | sha256sum"]).Output[..64];
        CommandRunner.Check("dd", "if=/dev/zero", $"of={link}", "bs=1M", "count=4", "oflag=direct", "status=none");
        string viewName = scratch.NewName();
        string viewLink = scratch.Attach($"{image}@s", viewName);
        scratch.Detach(name);
        CliAssert.OneLineError(scratch.Cow("snapshot", "delete", image, "s"), "snapshot view");
        CliAssert.OneLineError(scratch.Cow("create", image, "--size", "64M", "--force"), "snapshot view");
        Assert.Equal(expected, CommandRunner.Run("sh", ["-c", $"head -c 4M {viewLink} | sha256sum"]).Output[..64]);
        scratch.Detach(viewName);
        Assert.Equal(0, scratch.Cow("snapshot", "delete", image, "s").ExitCode);
        Assert.Equal(0, scratch.Cow("check", image).ExitCode);
    }

    /// <summary>
    /// Layered blocks through the writer's export: 4 KiB writes after one snapshot layer their clusters, a second
    /// snapshot reads those layers, and a reader in another process (the image is held) sees that snapshot exactly.
    /// </summary>
    [AttachFact]
    public void A_held_snapshot_that_reads_layered_blocks_reads_exactly_through_the_writer()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        CommandRunner.Check("dd", "if=/dev/urandom", $"of={link}", "bs=1M", "count=4", "oflag=direct", "status=none");
        Assert.Equal(0, scratch.Cow("snapshot", "create", image, "s1").ExitCode);
        foreach (int seek in new[] { 1, 17, 18, 300, 1023 })   // 4 KiB blocks inside 64 KiB clusters: layered
            CommandRunner.Check("dd", "if=/dev/urandom", $"of={link}", "bs=4K", "count=1", $"seek={seek}", "oflag=direct", "conv=notrunc", "status=none");
        Assert.Equal(0, scratch.Cow("snapshot", "create", image, "s2").ExitCode);
        string expected = CommandRunner.Run("sh", ["-c", $"head -c 4M {link} | sha256sum"]).Output[..64];
        foreach (int seek in new[] { 1, 2, 300, 600 })          // layered blocks s2 shares: copied whole now
            CommandRunner.Check("dd", "if=/dev/zero", $"of={link}", "bs=4K", "count=1", $"seek={seek}", "oflag=direct", "conv=notrunc", "status=none");
        var read = scratch.Cow("io", $"{image}@s2", "read", "0", "4M");
        Assert.True(read.ExitCode == 0, read.ToString());
        Assert.Contains($"sha256: {expected}", read.Output);
        scratch.Detach(name);
        Assert.Equal(0, scratch.Cow("check", image).ExitCode);
        Assert.Contains($"sha256: {expected}", scratch.Cow("io", $"{image}@s2", "read", "0", "4M").Output);
    }
}
