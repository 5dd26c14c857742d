using System.Security.Cryptography;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>`create --force` is a writer like any other; leftovers of a vanished image do not block a new one.</summary>
public class CreateReplaceTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    private static string Sums(string folder) => string.Join(";", Directory.GetFiles(folder).Order()
        .Select(f => $"{Path.GetFileName(f)}={Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}"));

    [Fact]
    public void Force_on_an_image_open_for_writing_is_refused_naming_the_holder_and_changes_nothing()
    {
        using var dir = new TempDir();
        string img = dir.File("held.img");
        Assert.Equal(0, Cow("create", img, "--size", "4M").ExitCode);
        using (var writer = CowImage.Open(img, new ImageOpenOptions()))   // this test process is the writer
        {
            writer.Write(0, ModelRunner.Pattern(65536, 4));
            writer.Flush();
            string before = Sums(dir.Path);
            var r = Cow("create", img, "--size", "1M", "--force");
            Assert.Equal(1, r.ExitCode);
            Assert.Contains("cannot be replaced: it is in use", r.Error);
            Assert.Contains($"pid {Environment.ProcessId}", r.Error);
            Assert.Single(r.Error.Trim().Split('\n'));
            Assert.Equal(before, Sums(dir.Path));
        }
        Assert.Equal(0, Cow("io", img, "read", "0", "64K").ExitCode);
    }

    [Fact]
    public void Force_on_the_base_of_an_open_overlay_is_refused()
    {
        using var dir = new TempDir();
        string b = dir.File("base.img"), top = dir.File("top.img");
        Assert.Equal(0, Cow("create", b, "--size", "4M").ExitCode);
        Assert.Equal(0, Cow("create", top, "--backing", "base.img").ExitCode);
        using var overlay = CowImage.Open(top, new ImageOpenOptions());   // holds its base open read-only
        var r = Cow("create", b, "--size", "4M", "--force");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("cannot be replaced: it is in use", r.Error);
    }

    [Fact]
    public void Logs_left_by_an_image_that_no_longer_exists_do_not_block_create()
    {
        using var dir = new TempDir();
        string img = dir.File("new.img");
        File.WriteAllBytes(img + ".meta-log.db", new byte[8192]);   // a crashed writer of an earlier build
        File.WriteAllBytes(img + ".meta.log", new byte[9000]);
        var r = Cow("create", img, "--size", "1M");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.False(File.Exists(img + ".meta-log.db"));
        Assert.Equal(0, Cow("io", img, "write", "0", "4K").ExitCode);
    }
}
