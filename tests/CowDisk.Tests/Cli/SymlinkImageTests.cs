using System.Text.Json;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>An image named through a symlink: its metadata and relative backing sit beside the real data file.</summary>
public class SymlinkImageTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    [Fact]
    public void A_symlink_in_another_folder_finds_the_metadata_and_backing_beside_the_target()
    {
        using var dir = new TempDir();
        string real = Directory.CreateDirectory(dir.File("real")).FullName, links = Directory.CreateDirectory(dir.File("links")).FullName;
        string baseImage = Path.Combine(real, "base.img"), top = Path.Combine(real, "top.img"), link = Path.Combine(links, "top.img");
        Assert.Equal(0, Cow("create", baseImage, "--size", "1M").ExitCode);
        Assert.Equal(0, Cow("io", baseImage, "write", "-P", "0x11", "0", "1M").ExitCode);
        Assert.Equal(0, Cow("create", top, "--backing", "base.img").ExitCode);   // stored relative to real/
        File.CreateSymbolicLink(link, "../real/top.img");

        var write = Cow("io", link, "write", "-P", "0x22", "64K", "4K");
        Assert.True(write.ExitCode == 0, write.ToString());
        Assert.Equal(0, Cow("io", link, "verify", "-P", "0x11", "0", "64K").ExitCode);
        Assert.Equal(0, Cow("io", top, "verify", "-P", "0x22", "64K", "4K").ExitCode);

        var info = Cow("info", link, "--output", "json");
        Assert.True(info.ExitCode == 0, info.ToString());
        using var json = JsonDocument.Parse(info.Output);
        Assert.Equal(top, json.RootElement.GetProperty("path").GetString());
        Assert.Contains(top + ".meta.db", json.RootElement.GetProperty("files").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(baseImage, json.RootElement.GetProperty("backing").GetProperty("path").GetString());
        Assert.Equal(["top.img"], Directory.GetFileSystemEntries(links).Select(Path.GetFileName));   // nothing created beside the link
    }

    [Fact]
    public void A_dangling_symlink_names_the_missing_target()
    {
        using var dir = new TempDir();
        string link = dir.File("gone.img");
        File.CreateSymbolicLink(link, dir.File("nowhere.img"));
        CliAssert.OneLineError(Cow("info", link), $"image {link} is a symlink to {dir.File("nowhere.img")}, which does not exist");
        CliAssert.OneLineError(Cow("io", link, "read", "0", "1"), "does not exist");
    }
}
