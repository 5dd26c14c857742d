using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>io write --from: regular files are checked up front; pipes and devices are read as streams.</summary>
public class IoFromTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    [Fact]
    public void A_short_file_is_refused_before_anything_is_written()
    {
        using var dir = new TempDir();
        string img = dir.File("f.img"), from = dir.File("short.bin");
        Assert.Equal(0, Cow("create", img, "--size", "4M").ExitCode);
        File.WriteAllBytes(from, new byte[1000]);
        string before = CliAssert.Fingerprint(img, img + ".meta.db");
        CliAssert.OneLineError(Cow("io", img, "write", "--from", from, "0", "4K"), "has 1000 bytes, fewer than the 4096 to write; nothing was written");
        CliAssert.OneLineError(Cow("io", img, "write", "--from", dir.Path, "0", "4K"), "is a folder");
        CliAssert.OneLineError(Cow("io", img, "write", "--from", dir.File("nope"), "0", "4K"), "does not exist");
        Assert.Equal(before, CliAssert.Fingerprint(img, img + ".meta.db"));
    }

    [Fact]
    public void Dev_zero_and_a_pipe_are_read_for_exactly_length_bytes()
    {
        using var dir = new TempDir();
        string img = dir.File("s.img"), data = dir.File("data.bin");
        Assert.Equal(0, Cow("create", img, "--size", "8M").ExitCode);
        Assert.Equal(0, Cow("io", img, "write", "-P", "0x5a", "0", "8M").ExitCode);

        var zero = Cow("io", img, "write", "--from", "/dev/zero", "1000", "3M");
        Assert.True(zero.ExitCode == 0, zero.ToString());
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0", "1000", "3M").ExitCode);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0x5a", "0", "1000").ExitCode);

        File.WriteAllBytes(data, ModelRunner.Pattern(3 << 20, 7));   // longer than LENGTH: only LENGTH is taken
        var pipe = CliAssert.Shell($"cat '{data}' | \"$COWDISK\" io '{img}' write --from /dev/stdin 4M 2500000");
        Assert.True(pipe.ExitCode == 0, pipe.ToString());
        var read = Cow("io", img, "read", "4M", "2500000");
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(data).AsSpan(0, 2500000)));
        Assert.Contains($"sha256: {expected}", read.Output);
        Assert.Equal(0, Cow("io", img, "verify", "-P", "0x5a", "6750000", "100000").ExitCode);
    }

    [Fact]
    public void A_pipe_that_ends_early_is_a_clear_error()
    {
        using var dir = new TempDir();
        string img = dir.File("p.img");
        Assert.Equal(0, Cow("create", img, "--size", "4M").ExitCode);
        string before = CliAssert.Fingerprint(img, img + ".meta.db");
        var tiny = CliAssert.Shell($"head -c 100 /dev/zero | \"$COWDISK\" io '{img}' write --from /dev/stdin 0 4K");
        CliAssert.OneLineError(tiny, "ended after 100 of 4096 bytes; nothing was written");
        Assert.Equal(before, CliAssert.Fingerprint(img, img + ".meta.db"));

        var partial = CliAssert.Shell($"head -c 1500000 /dev/zero | \"$COWDISK\" io '{img}' write --from /dev/stdin 0 3M");
        CliAssert.OneLineError(partial, "ended after 1500000 of 3145728 bytes; only 1048576 bytes were written, at offset 0");
        Assert.Contains("clean shutdown: yes", Cow("info", img).Output);
    }
}
