using System.Text.RegularExpressions;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Attach;

/// <summary>
/// A cowdisk image on a real, small ext4 file system (a 40 MiB file system image, loop-mounted, no reserved
/// blocks) that runs out of space: a filler file leaves a few MiB free, then writes go past them.
/// </summary>
[Collection(AttachCollection.Name)]
public sealed partial class AttachDiskFullTests(ITestOutputHelper output)
{
    private const long MiB = 1 << 20;
    private const long FreeLeft = 3 * MiB;
    private const string NoSpace = "No space left on device";
    private const byte Flushed = 0xab, Later = 0xcd, Pattern = 0x5a;

    [AttachFact]
    public void Io_write_past_free_space_fails_in_one_line_and_the_image_keeps_its_flushed_data()
    {
        using var scratch = new AttachScratch();
        string host = SmallFileSystem(scratch);
        string image = Path.Combine(host, "disk.img");
        CommandRunner.Check(CowdiskExecutable.Path, "create", image, "--size", "1G");
        Check(CowdiskExecutable.Run("io", image, "write", "0", "4M", "-P", Hex(Flushed)));
        string filler = Fill(host, FreeLeft);

        var full = CowdiskExecutable.Run("io", image, "write", "4M", "32M", "-P", Hex(Later));
        output.WriteLine($"io write past the free space: {full}");
        Assert.NotEqual(0, full.ExitCode);
        AssertOneLineError(full.Error);

        var info = CowdiskExecutable.Run("info", image);
        Assert.True(info.ExitCode == 0, $"info after the failed write: {info}");
        Check(CowdiskExecutable.Run("io", image, "read", "0", "4M", "--verify", Hex(Flushed)));

        File.Delete(filler);
        Check(CowdiskExecutable.Run("io", image, "write", "4M", "8M", "-P", Hex(Later)));
        Check(CowdiskExecutable.Run("io", image, "read", "4M", "8M", "--verify", Hex(Later)));
        Check(CowdiskExecutable.Run("io", image, "read", "0", "4M", "--verify", Hex(Flushed)));
        Assert.Contains("clean shutdown: yes", CowdiskExecutable.Run("info", image).Output);
    }

    [AttachFact]
    public void Attached_write_past_free_space_gets_ENOSPC_and_fsync_and_detach_still_succeed()
    {
        using var scratch = new AttachScratch();
        var (image, name, link, _) = AttachOnSmallFileSystem(scratch);
        long written = WritePastFreeSpace(scratch, link);

        using (var device = new DirectBlockDevice(link))
        {
            AssertReads(device, written, Pattern);
            int result = device.DataSync();
            Assert.True(result == 0, $"fsync of the device after ENOSPC: {DirectBlockDevice.ErrnoName(-result)} " +
                                     $"(free space now {new DriveInfo(Path.GetDirectoryName(image)!).AvailableFreeSpace} bytes)");
        }
        scratch.Detach(name);
        Check(CowdiskExecutable.Run("io", image, "read", "0", written.ToString(), "--verify", Hex(Pattern)));
        Assert.Contains("clean shutdown: yes", CowdiskExecutable.Run("info", image).Output);
    }

    [AttachFact]
    public void Attached_disk_full_works_again_once_space_is_freed()
    {
        using var scratch = new AttachScratch();
        var (image, name, link, filler) = AttachOnSmallFileSystem(scratch);
        long written = WritePastFreeSpace(scratch, link);

        using (var device = new DirectBlockDevice(link))
        {
            AssertReads(device, written, Pattern);
            File.Delete(filler);
            Assert.Equal(0, device.DataSync());
        }
        var more = CommandRunner.Run("dd", [$"if={PatternFile(scratch)}", $"of={link}", "bs=1M", $"seek={written / MiB}", "count=4",
                                            "oflag=direct", "conv=fsync"]);
        Assert.True(more.ExitCode == 0, $"dd after freeing space: {more}");
        scratch.Detach(name);
        Check(CowdiskExecutable.Run("io", image, "read", "0", (written + 4 * MiB).ToString(), "--verify", Hex(Pattern)));
        Assert.Contains("clean shutdown: yes", CowdiskExecutable.Run("info", image).Output);
    }

    /// <summary>
    /// Attaches a new image on a small file system, writes 4 MiB through the device with an fsync, then fills the
    /// file system up to FreeLeft bytes. Returns the image, name, link and filler file.
    /// </summary>
    private static (string Image, string Name, string Link, string Filler) AttachOnSmallFileSystem(AttachScratch scratch)
    {
        string host = SmallFileSystem(scratch);
        string image = Path.Combine(host, "disk.img");
        CommandRunner.Check(CowdiskExecutable.Path, "create", image, "--size", "1G");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        var first = CommandRunner.Run("dd", [$"if={PatternFile(scratch)}", $"of={link}", "bs=1M", "count=4", "oflag=direct", "conv=fsync"]);
        Assert.True(first.ExitCode == 0, $"dd of the first 4 MiB: {first}");
        return (image, name, link, Fill(host, FreeLeft));
    }

    /// <summary>dd of the pattern from 4 MiB on, past the free space: must fail with ENOSPC. Returns the bytes written from 0.</summary>
    private long WritePastFreeSpace(AttachScratch scratch, string link)
    {
        var dd = CommandRunner.Run("dd", [$"if={PatternFile(scratch)}", $"of={link}", "bs=1M", "seek=4", "count=32", "oflag=direct"]);
        output.WriteLine($"dd past the free space: {dd}");
        Assert.NotEqual(0, dd.ExitCode);
        Assert.Contains(NoSpace, dd.Error);
        var records = RecordsOut().Match(dd.Error);
        Assert.True(records.Success, $"no records-out line from dd: {dd.Error}");
        return (4 + long.Parse(records.Groups[1].Value)) * MiB;
    }

    private static void AssertReads(DirectBlockDevice device, long length, byte expected)
    {
        using var buffer = new AlignedBuffer((int)MiB);
        for (long offset = 0; offset < length; offset += MiB)
        {
            int result = device.Read(offset, buffer, (int)MiB);
            Assert.True(result == 0, $"read at {offset} after ENOSPC: {DirectBlockDevice.ErrnoName(-result)}");
            int bad = buffer.Span.IndexOfAnyExcept(expected);
            Assert.True(bad < 0, $"byte {offset + bad} reads 0x{(bad < 0 ? 0 : buffer.Span[bad]):x2}, written as 0x{expected:x2}");
        }
    }

    /// <summary>A 40 MiB ext4 file system (no reserved blocks), loop-mounted in the scratch folder.</summary>
    private static string SmallFileSystem(AttachScratch scratch)
    {
        string fileSystem = Path.Combine(scratch.Folder, "small-ext4.img");
        using (var file = File.Create(fileSystem)) file.SetLength(40 * MiB);
        CommandRunner.Check("mkfs.ext4", "-q", "-F", "-m", "0", fileSystem);
        return scratch.MountHost(fileSystem);
    }

    /// <summary>Allocates a filler file so that about `left` bytes stay free; returns its path.</summary>
    private static string Fill(string host, long left)
    {
        string filler = Path.Combine(host, "filler");
        long available = new DriveInfo(host).AvailableFreeSpace;
        Assert.True(available > left + MiB, $"only {available} bytes free on the small file system");
        CommandRunner.Check("fallocate", "-l", (available - left).ToString(), filler);
        return filler;
    }

    private static string PatternFile(AttachScratch scratch)
    {
        string path = Path.Combine(scratch.Folder, "pattern.bin");
        if (!File.Exists(path))
        {
            var bytes = new byte[64 * MiB];
            Array.Fill(bytes, Pattern);
            File.WriteAllBytes(path, bytes);
        }
        return path;
    }

    private static void AssertOneLineError(string error)
    {
        string[] lines = error.TrimEnd().Split('\n');
        Assert.True(lines.Length == 1, $"expected a one-line error, got {lines.Length} lines:\n{error}");
        Assert.StartsWith("cowdisk: ", lines[0]);
        Assert.Contains(NoSpace, lines[0]);
        Assert.DoesNotContain("Exception", error);
        Assert.DoesNotContain("   at ", error);
    }

    private static void Check(CommandRunner.Result result) => Assert.True(result.ExitCode == 0, result.ToString());

    private static string Hex(byte value) => $"0x{value:x2}";

    [GeneratedRegex(@"^(\d+)\+\d+ records out", RegexOptions.Multiline)]
    private static partial Regex RecordsOut();
}
