using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Attach;

/// <summary>
/// kill -9 of the attach daemon while `snapshot create` goes through its control socket, with ext4 mounted and
/// files being fsynced: after re-attach every fsynced file is there, e2fsck is clean, every snapshot whose create
/// returned exists, nothing else does, and each one that exists replays to a clean file system in a clone. The
/// crashed image may hold leaks (clusters written but never committed) and nothing worse; the re-attach gives
/// their space back, so `check` is clean at the end.
/// </summary>
[Collection(AttachCollection.Name)]
public sealed class AttachSnapshotCrashTests(ITestOutputHelper output)
{
    [AttachFact]
    public void Kill_9_during_snapshot_create_keeps_every_acknowledged_snapshot()
    {
        int rounds = KillRounds.FromEnvironment("COWDISK_SNAPSHOT_KILL_ROUNDS", 3);
        int seed = KillRounds.Seed();
        output.WriteLine($"rounds {rounds}, seed {seed} (COWDISK_KILL_SEED)");
        var random = new Random(seed);
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "256M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        CommandRunner.Check("mkfs.ext4", "-q", "-F", link);
        string mountPoint = scratch.Mount(link);
        var durable = new ConcurrentDictionary<string, string>();
        var acknowledged = new List<string>();
        var attempted = new List<string>();
        int fileNumber = 0;

        for (int round = 1; round <= rounds; round++)
        {
            int pid = Assert.Single(scratch.List(), s => s.Name == name).Pid;
            var fsyncEnded = new ConcurrentDictionary<string, long>();
            var hashes = new ConcurrentDictionary<string, string>();
            using var stop = new CancellationTokenSource();
            var writer = new Thread(() =>
            {
                var r = new Random(seed + round);
                try
                {
                    while (!stop.IsCancellationRequested)
                    {
                        string file = $"f{Interlocked.Increment(ref fileNumber):D6}";
                        var data = new byte[r.Next(1, 64 << 10)];
                        r.NextBytes(data);
                        using (var handle = File.OpenHandle(Path.Combine(mountPoint, file), FileMode.CreateNew, FileAccess.Write))
                        {
                            RandomAccess.Write(handle, data, 0);
                            if (Posix.Fsync(handle) != 0) return;
                        }
                        if (Posix.FsyncDirectory(mountPoint) != 0) return;
                        hashes[file] = Convert.ToHexString(SHA256.HashData(data));
                        fsyncEnded[file] = Stopwatch.GetTimestamp();
                    }
                }
                catch (IOException) { }   // the device died under it
            }) { IsBackground = true };
            writer.Start();
            Thread.Sleep(random.Next(300, 1200));
            string snapshot = $"r{round}";
            attempted.Add(snapshot);
            var create = scratch.StartCow("snapshot", "create", image, snapshot);
            Thread.Sleep(random.Next(0, 120));
            long killedAt = Stopwatch.GetTimestamp();
            Posix.Kill9(pid);
            Assert.True(create.WaitForExit(60_000), $"round {round}: snapshot create hung after kill -9");
            if (create.ExitCode == 0) acknowledged.Add(snapshot);
            stop.Cancel();
            Assert.True(writer.Join(60_000), $"round {round}: file I/O hung after kill -9");
            foreach (var (file, ended) in fsyncEnded)
                if (ended < killedAt) durable[file] = hashes[file];

            scratch.UnmountDead(mountPoint);
            // The image as the crash left it, before any recovery: leaks (written, never committed) at most, never corruption.
            var crashed = scratch.Cow("check", image);
            Assert.True(crashed.ExitCode is 0 or 3, $"round {round} (seed {seed}): check of the crashed image: {crashed}");
            link = scratch.Attach(image, name);
            scratch.Unmount(scratch.Mount(link));   // replays the journal
            var fsck = CommandRunner.Run("e2fsck", ["-fn", link]);
            Assert.True(fsck.ExitCode == 0, $"round {round} (seed {seed}): e2fsck -fn after replay: {fsck}");
            mountPoint = scratch.Mount(link);
            foreach (var (file, sum) in durable)
            {
                string path = Path.Combine(mountPoint, file);
                Assert.True(File.Exists(path), $"round {round} (seed {seed}): fsynced {file} is gone");
                Assert.Equal(sum, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))));
            }

            var listed = scratch.Cow("snapshot", "list", image).Output;
            foreach (string s in acknowledged) Assert.True(listed.Contains(s), $"round {round} (seed {seed}): acknowledged snapshot {s} is gone:\n{listed}");
            string? made = attempted.LastOrDefault(s => listed.Contains($" {s} "));
            output.WriteLine($"round {round}: create {(create.ExitCode == 0 ? "returned" : "failed")} ({create.ExitCode}); " +
                             $"crashed image {(crashed.ExitCode == 0 ? "clean" : "with leaks")}; " +
                             $"{durable.Count} fsynced files verified; snapshots listed: {string.Join(",", attempted.Where(s => listed.Contains($" {s} ")))}");
            if (made is null) continue;
            // The newest snapshot replays to a clean file system in a clone, served through the running daemon.
            string cloneName = scratch.NewName();
            string cloneLink = scratch.Attach($"{image}@{made}", cloneName, "--overlay");
            var replay = CommandRunner.Run("e2fsck", ["-fy", cloneLink]);
            Assert.True(replay.ExitCode is 0 or 1, $"round {round}: e2fsck -fy of snapshot {made}: {replay}");
            var clean = CommandRunner.Run("e2fsck", ["-fn", cloneLink]);
            Assert.True(clean.ExitCode == 0, $"round {round}: e2fsck -fn of snapshot {made} after replay: {clean}");
            scratch.Detach(cloneName);
            string overlay = Path.Combine(scratch.Folder, $"disk.{cloneName}.overlay.img");
            foreach (var f in new[] { "", ".meta.db", ".meta.log" }) File.Delete(overlay + f);
        }
        scratch.Unmount(mountPoint);
        scratch.Detach(name);
        var check = scratch.Cow("check", image);
        Assert.True(check.ExitCode == 0, $"check after {rounds} rounds (seed {seed}): {check}");
    }
}
