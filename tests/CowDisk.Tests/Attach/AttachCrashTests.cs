using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>kill -9 of the daemon: I/O on the device fails instead of hanging, and the image comes back.</summary>
[Collection(AttachCollection.Name)]
public sealed class AttachCrashTests
{
    private static readonly TimeSpan WriterExitTimeout = TimeSpan.FromSeconds(60);

    [AttachFact]
    public void Kill_9_under_write_load_fails_io_and_the_image_reattaches()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "1G");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        var record = scratch.Record(name);
        string loop = Path.GetFileName(record.Device!);

        // Rewrites the device until a write fails.
        var writer = scratch.StartChild("sh", "-c",
            $"while :; do dd if=/dev/urandom of={link} bs=64k count=2048 oflag=direct 2>/dev/null || exit 3; done");
        WaitUntil(() => WrittenSectors(loop) > 8192 || writer.HasExited, "the writer to get going");
        Assert.False(writer.HasExited, "the writer stopped before the daemon was killed");

        CommandRunner.Check("kill", "-9", record.Pid.ToString());
        Assert.True(writer.WaitForExit(WriterExitTimeout), "I/O on the device hung after kill -9 of the daemon");
        Assert.NotEqual(0, writer.ExitCode);

        var status = Assert.Single(scratch.List(), s => s.Name == name);
        Assert.Equal("stale", status.State);
        Assert.False(File.Exists(scratch.Paths.RecordPath(name)), "list did not clean up the stale record");
        Assert.Null(new FileInfo(link).LinkTarget);

        link = scratch.Attach(image, name);
        var reads = CommandRunner.Run("dd", [$"if={link}", "of=/dev/null", "bs=1M", "count=64", "iflag=direct"]);
        Assert.True(reads.ExitCode == 0, $"reading the re-attached device failed: {reads}");
        scratch.Detach(name);

        var info = CowdiskExecutable.Run("info", image);
        Assert.True(info.ExitCode == 0, $"info failed: {info}");
        Assert.Contains(image, info.Output);
    }

    private static long WrittenSectors(string loop)
    {
        // /sys/block/loopN/stat: field 7 counts sectors written.
        string[] fields = File.ReadAllText($"/sys/block/{loop}/stat").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return long.Parse(fields[6]);
    }

    private static void WaitUntil(Func<bool> condition, string what)
    {
        long deadline = Environment.TickCount64 + 60_000;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline) Assert.Fail($"timed out waiting for {what}");
            Thread.Sleep(50);
        }
    }
}
