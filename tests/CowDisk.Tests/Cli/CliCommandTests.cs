using System.Security.Cryptography;
using System.Text.Json;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>The README's commands, run through the real `cowdisk` executable.</summary>
public class CliCommandTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static void AssertOneLineError(CommandRunner.Result r, string fragment)
    {
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(fragment, r.Error);
        Assert.Single(r.Error.Trim().Split('\n'));
        Assert.StartsWith("cowdisk: ", r.Error);
    }

    [Fact]
    public void Overlay_walkthrough_from_the_readme()
    {
        using var dir = new TempDir();
        string b = dir.File("base.img"), t = dir.File("top.img");
        Assert.Equal(0, Cow("create", b, "--size", "1G").ExitCode);
        Assert.Equal(0, Cow("io", b, "write", "--pattern", "0xab", "0", "1M").ExitCode);
        string baseSum = Sha(b) + Sha(b + ".meta.db");
        Assert.Equal(0, Cow("create", t, "--backing", b).ExitCode);
        var w = Cow("io", t, "write", "--pattern", "0xcd", "512K", "64K");
        Assert.Equal(0, w.ExitCode);
        Assert.Contains("wrote 65536/65536 bytes at offset 524288", w.Output);
        Assert.Equal(0, Cow("io", t, "read", "--verify", "0xab", "0", "512K").ExitCode);
        Assert.Equal(0, Cow("io", t, "read", "--verify", "0xcd", "512K", "64K").ExitCode);
        Assert.Equal(0, Cow("io", t, "verify", "-P", "0xab", "576K", "448K").ExitCode);

        var bad = Cow("io", t, "read", "--verify", "0xab", "0", "1M");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("verify failed at offset 524288: expected 0xab, found 0xcd", bad.Error);

        var info = Cow("info", t, "--output", "json");
        Assert.Equal(0, info.ExitCode);
        using var json = JsonDocument.Parse(info.Output);
        var root = json.RootElement;
        Assert.Equal(1L << 30, root.GetProperty("virtual-size").GetInt64());
        Assert.Equal(65536, root.GetProperty("cluster-size").GetInt32());
        Assert.Equal(65536, root.GetProperty("allocated-bytes").GetInt64());
        Assert.Equal("cowdisk", root.GetProperty("backing-format").GetString());
        Assert.Contains(t, root.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
        Assert.Contains(t + ".meta.db", root.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(b, root.GetProperty("backing").GetProperty("path").GetString());
        Assert.Equal(1L << 20, root.GetProperty("backing").GetProperty("allocated-bytes").GetInt64());

        var human = Cow("info", t);
        Assert.Contains("virtual size: 1 GiB (1073741824 bytes)", human.Output);
        Assert.Contains("backing file: ", human.Output);

        Assert.Equal(baseSum, Sha(b) + Sha(b + ".meta.db"));   // the base never changes
    }

    [Fact]
    public void Unaligned_io_discard_and_zero()
    {
        using var dir = new TempDir();
        string img = dir.File("u.img");
        Assert.Equal(0, Cow("create", img, "--size", "10M", "--cluster-size", "4K").ExitCode);
        Assert.Equal(0, Cow("io", img, "write", "-P", "0x11", "1000", "9000").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0x11", "1000", "9000").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0", "0", "1000").ExitCode);
        Assert.Equal(0, Cow("io", img, "discard", "2000", "5000").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0", "2000", "5000").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0x11", "7000", "3000").ExitCode);
        Assert.Equal(0, Cow("io", img, "zero", "0", "10M").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0", "0", "10M").ExitCode);
    }

    [Theory]
    [InlineData("12X", "invalid size")]
    [InlineData("-5", "invalid size")]
    [InlineData("0", "greater than zero")]
    [InlineData("65T", "out of range")]
    public void Bad_sizes_are_one_line_errors_and_create_nothing(string size, string fragment)
    {
        using var dir = new TempDir();
        var r = Cow("create", dir.File("x.img"), "--size", size);
        AssertOneLineError(r, fragment);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Theory]
    [InlineData("3K")]
    [InlineData("4M")]
    [InlineData("1000")]
    public void Bad_cluster_sizes_are_refused(string cs)
    {
        using var dir = new TempDir();
        AssertOneLineError(Cow("create", dir.File("x.img"), "--size", "1M", "--cluster-size", cs), "cluster size");
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Create_over_an_existing_image_is_refused_without_force()
    {
        using var dir = new TempDir();
        string img = dir.File("e.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        Assert.Equal(0, Cow("io", img, "write", "-P", "0x42", "0", "4K").ExitCode);
        string before = Sha(img) + Sha(img + ".meta.db");
        AssertOneLineError(Cow("create", img, "--size", "2M"), "already exists");
        Assert.Equal(before, Sha(img) + Sha(img + ".meta.db"));
        Assert.Equal(0, Cow("create", img, "--size", "2M", "--force").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0", "0", "2M").ExitCode);
    }

    [Fact]
    public void Out_of_range_io_is_refused_and_writes_nothing()
    {
        using var dir = new TempDir();
        string img = dir.File("r.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        string before = Sha(img);
        AssertOneLineError(Cow("io", img, "write", "-P", "1", "1M", "1"), "outside the image");
        AssertOneLineError(Cow("io", img, "write", "-P", "1", "1020K", "8K"), "outside the image");
        AssertOneLineError(Cow("io", img, "read", "2M", "1"), "outside the image");
        AssertOneLineError(Cow("io", img, "write", "-P", "0x1ff", "0", "1"), "invalid pattern");
        AssertOneLineError(Cow("io", img, "write", "-P", "1", "abc", "1"), "invalid offset");
        Assert.Equal(before, Sha(img));
    }

    [Fact]
    public void Missing_or_mismatched_files_are_clear_errors()
    {
        using var dir = new TempDir();
        AssertOneLineError(Cow("info", dir.File("nope.img")), "does not exist");

        string a = dir.File("a.img"), b = dir.File("b.img");
        Assert.Equal(0, Cow("create", a, "--size", "1M").ExitCode);
        Assert.Equal(0, Cow("create", b, "--size", "1M").ExitCode);
        File.Copy(b + ".meta.db", a + ".meta.db", overwrite: true);   // metadata of another image
        AssertOneLineError(Cow("io", a, "read", "0", "4K"), "belongs to image");

        File.Delete(a + ".meta.db");
        AssertOneLineError(Cow("info", a), "metadata file");

        File.WriteAllBytes(dir.File("junk.img"), new byte[8192]);
        File.WriteAllBytes(dir.File("junk.img.meta.db"), new byte[8192]);
        AssertOneLineError(Cow("io", dir.File("junk.img"), "read", "0", "1"), "bad magic");

        string c = dir.File("c.img");
        Assert.Equal(0, Cow("create", c, "--size", "1M").ExitCode);
        var meta = File.ReadAllBytes(c + ".meta.db");
        Array.Fill(meta, (byte)0x77, 0, 4096);                      // LiteDB header page destroyed
        File.WriteAllBytes(c + ".meta.db", meta);
        AssertOneLineError(Cow("io", c, "read", "0", "1"), "metadata file");
    }

    [Fact]
    public void A_missing_base_is_a_clear_error()
    {
        using var dir = new TempDir();
        string b = dir.File("base.raw"), t = dir.File("top.img");
        AssertOneLineError(Cow("create", t, "--backing", b), "does not exist");
        Assert.False(File.Exists(t));
        File.WriteAllBytes(b, ModelRunner.Pattern(1 << 20, 3));
        Assert.Equal(0, Cow("create", t, "--backing", "base.raw").ExitCode);
        Assert.Equal(0, Cow("io", t, "write", "-P", "0x01", "100", "100").ExitCode);
        File.Delete(b);
        string before = Sha(t);
        AssertOneLineError(Cow("io", t, "read", "0", "4K"), "backing file");
        AssertOneLineError(Cow("io", t, "write", "-P", "1", "0", "4K"), "backing file");
        Assert.Equal(before, Sha(t));
    }

    [Fact]
    public void Settings_come_from_json_environment_and_command_line()
    {
        using var dir = new TempDir();
        string img = dir.File("s.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        File.WriteAllText(dir.File("cfg.json"), "{ \"Engine\": { \"RingSlots\": 100 } }");
        AssertOneLineError(Cow("io", img, "read", "0", "4K", "--config", dir.File("cfg.json")), "ring slots");
        AssertOneLineError(Cow("io", img, "read", "0", "4K", "--set", "Engine:RingSlots=100"), "ring slots");
        var env = CommandRunner.Run(CowdiskExecutable.Path, new[] { "io", img, "read", "0", "4K" },
            environment: new Dictionary<string, string> { ["COWDISK_Engine__RingSlots"] = "100" });
        AssertOneLineError(env, "ring slots");
        AssertOneLineError(Cow("io", img, "write", "0", "4K", "--set", "Engine:RingSlots=100"), "ring slots");
        Assert.Contains("clean shutdown: yes", Cow("info", img).Output);   // a refused open marks nothing
        Assert.Equal(0, Cow("io", img, "read", "0", "4K", "--set", "Engine:MappingCache=false").ExitCode);
        AssertOneLineError(Cow("io", img, "read", "0", "4K", "--set", "Engine:MappingCache=perhaps"), "Engine");
        AssertOneLineError(Cow("io", img, "read", "0", "4K", "--set", "Engine:PollMicroseconds=-1"), "Engine:PollMicroseconds must be 0..100000, not -1");
        Assert.Equal(0, Cow("io", img, "read", "0", "4K", "--set", "Engine:PollMicroseconds=0").ExitCode);
    }

    [Fact]
    public void A_second_writer_is_refused_naming_the_holder()
    {
        using var dir = new TempDir();
        string img = dir.File("w.img");
        using (CowDisk.Engine.Images.CowImage.Create(img, new CowDisk.Engine.Images.ImageCreateOptions { Size = 1 << 20 })) { }
        using var holder = CowDisk.Engine.Images.CowImage.Open(img, new CowDisk.Engine.Images.ImageOpenOptions());
        string pid = $"held by pid {Environment.ProcessId}";
        AssertOneLineError(Cow("io", img, "write", "0", "4K"), pid);
        AssertOneLineError(Cow("io", img, "read", "0", "4K"), pid);
        Assert.Contains("in use: yes", Cow("info", img).Output);
    }
}
