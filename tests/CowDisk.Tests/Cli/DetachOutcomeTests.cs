using CowDisk.Engine.Frontends.Attach;
using CowDisk.Tests.Attach;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>detach exits 0 only when the daemon flushed and closed the image cleanly; otherwise it says what happened.</summary>
[Collection(AttachCollection.Name)]
public sealed class DetachOutcomeTests
{
    [AttachFact]
    public void A_full_disk_fails_the_writes_but_the_detach_closes_cleanly()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string small = Directory.CreateDirectory(Path.Combine(scratch.Folder, "small")).FullName;
        CommandRunner.Check("mount", "-t", "tmpfs", "-o", "size=20M", "tmpfs", small);
        try
        {
            string image = Path.Combine(small, "disk.img");
            CommandRunner.Check(CowdiskExecutable.Path, "create", image, "--size", "100M");
            string name = scratch.NewName();
            string link = scratch.Attach(image, name);
            // More than the folder holds: the data writes that need space fail; the metadata log's reserve
            // still holds the mappings of what was written, so the close is clean.
            var dd = CommandRunner.Run("dd", ["if=/dev/urandom", $"of={link}", "bs=1M", "count=40", "oflag=direct"]);
            Assert.NotEqual(0, dd.ExitCode);
            Assert.Contains("No space left on device", dd.Error);

            var detach = scratch.Cow("detach", name);
            Assert.True(detach.ExitCode == 0, detach.ToString());
            Assert.Contains("clean shutdown: yes", scratch.Cow("info", image).Output);
        }
        finally { CommandRunner.Run("umount", ["-l", small]); }
    }

    /// <summary>A close whose final commit cannot be written (the log made immutable under the daemon) fails the detach.</summary>
    [AttachFact]
    public void A_close_that_cannot_commit_fails_the_detach()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string fsFile = Path.Combine(scratch.Folder, "fs.ext4"), mnt = Directory.CreateDirectory(Path.Combine(scratch.Folder, "mnt")).FullName;
        using (var f = File.Create(fsFile)) f.SetLength(64 << 20);
        CommandRunner.Check("mkfs.ext4", "-q", fsFile);
        CommandRunner.Check("mount", "-o", "loop", fsFile, mnt);
        string image = Path.Combine(mnt, "disk.img");
        try
        {
            CommandRunner.Check(CowdiskExecutable.Path, "create", image, "--size", "100M");
            string name = scratch.NewName();
            string link = scratch.Attach(image, name);
            CommandRunner.Check("dd", "if=/dev/urandom", $"of={link}", "bs=1M", "count=4", "oflag=direct");   // mappings to commit
            CommandRunner.Check("chattr", "+i", image + ".meta.log");   // writes to it now fail with EPERM

            var detach = scratch.Cow("detach", name);
            CliAssert.OneLineError(detach, $"'{name}' did not shut down cleanly: ");
            Assert.DoesNotContain(scratch.List(), s => s.Name == name);   // detach cleaned up after it
            CommandRunner.Check("chattr", "-i", image + ".meta.log");
            Assert.Contains("clean shutdown: no", scratch.Cow("info", image).Output);
        }
        finally
        {
            CommandRunner.Run("chattr", ["-i", image + ".meta.log"]);
            CommandRunner.Run("umount", ["-l", mnt]);
        }
    }

    [AttachFact]
    public void A_daemon_killed_while_it_shuts_down_fails_the_detach()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        int pid = scratch.Record(name).Pid;
        // An opener of the device holds the daemon in its loop release (up to 10 s): time to kill it there.
        scratch.StartChild("sh", "-c", $"exec sleep 60 < {link}");
        Thread.Sleep(300);
        var detach = scratch.StartCow("detach", name);
        WaitUntil(() => scratch.Record(name).State == AttachState.Stopping, "the daemon to start shutting down");
        CommandRunner.Check("kill", "-9", pid.ToString());

        Assert.True(detach.WaitForExit(60_000), "detach hung");
        Assert.NotEqual(0, detach.ExitCode);
        Assert.Contains("died before it closed its image", detach.StandardError.ReadToEnd());
    }

    [AttachFact]
    public void A_daemon_that_died_before_the_detach_fails_it_and_one_stopped_cleanly_does_not()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        scratch.Attach(image, name);
        CommandRunner.Check("kill", "-9", scratch.Record(name).Pid.ToString());
        WaitUntil(() => !new AttachRegistry(scratch.Paths).IsAlive(name), "the daemon to die");
        CliAssert.OneLineError(scratch.Cow("detach", name), "had died without closing its image");
        Assert.False(File.Exists(scratch.Paths.RecordPath(name)));

        scratch.Attach(image, name);
        CommandRunner.Check("kill", scratch.Record(name).Pid.ToString());   // SIGTERM: a clean shutdown
        WaitUntil(() => scratch.Record(name).State == AttachState.Detached, "the daemon's outcome");
        var detach = scratch.Cow("detach", name);
        Assert.True(detach.ExitCode == 0, detach.ToString());
        Assert.Contains("already shut down cleanly", detach.Output);
        Assert.Contains("clean shutdown: yes", scratch.Cow("info", image).Output);
    }

    [AttachFact]
    public void List_leaves_out_a_daemon_that_shut_down_cleanly()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        scratch.Attach(image, name);
        CommandRunner.Check("kill", scratch.Record(name).Pid.ToString());
        WaitUntil(() => !new AttachRegistry(scratch.Paths).IsAlive(name), "the daemon to exit");
        Assert.DoesNotContain(scratch.List(), s => s.Name == name);
        Assert.False(File.Exists(scratch.Paths.RecordPath(name)));
        CliAssert.OneLineError(scratch.Cow("detach", name), "no attachment named");
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        long deadline = Environment.TickCount64 + 30_000;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline) Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(20);
        }
    }
}
