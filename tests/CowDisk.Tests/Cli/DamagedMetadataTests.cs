using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>
/// A damaged or empty metadata file is named as such, without LiteDB's or .NET's internals, and an empty one
/// is refused before LiteDB opens it (LiteDB would silently initialise an empty file opened for writing).
/// </summary>
public class DamagedMetadataTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    [Fact]
    public void A_destroyed_metadata_header_is_called_damaged_not_a_ticks_error()
    {
        using var dir = new TempDir();
        string img = dir.File("h.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        var meta = File.ReadAllBytes(img + ".meta.db");
        Array.Fill(meta, (byte)0x77, 0, 4096);   // LiteDB's header page: its creation time becomes out-of-range ticks
        File.WriteAllBytes(img + ".meta.db", meta);
        foreach (var r in new[] { Cow("info", img), Cow("io", img, "read", "0", "1"), Cow("io", img, "write", "0", "1") })
        {
            CliAssert.OneLineError(r, $"metadata file {img}.meta.db is damaged");
            Assert.DoesNotContain("Ticks", r.Error);
        }
    }

    [Fact]
    public void An_empty_metadata_file_is_called_empty_and_left_empty()
    {
        using var dir = new TempDir();
        string img = dir.File("e.img");
        Assert.Equal(0, Cow("create", img, "--size", "1M").ExitCode);
        File.WriteAllBytes(img + ".meta.db", []);
        foreach (var r in new[] { Cow("info", img), Cow("io", img, "read", "0", "1"), Cow("io", img, "write", "0", "1") })
        {
            CliAssert.OneLineError(r, $"metadata file {img}.meta.db is empty");
            Assert.DoesNotContain("Stream does not support", r.Error);
        }
        Assert.Equal(0, new FileInfo(img + ".meta.db").Length);
    }
}
