using System.Buffers.Binary;
using System.Security.Cryptography;
using CowDisk.Format.Image;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>
/// Hostile and damaged files, as a table: each case damages one file of a good image (or its surroundings),
/// then a writer (`io write`) and a reader (`io read`) must answer with one line on stderr and a non-zero exit,
/// and no file of the image may change (checksums before and after).
/// </summary>
public class HostileFileTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    private static string Sums(string folder) => string.Join(";", Directory.GetFiles(folder).Where(CowDisk.Engine.Native.HostFile.IsRegularFile).Order()
        .Select(f => $"{Path.GetFileName(f)}={Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}"));

    /// <summary>A good image with data, closed cleanly.</summary>
    private static string GoodImage(TempDir dir, string name = "disk.img", int clusterSize = 65536)
    {
        string path = dir.File(name);
        Assert.Equal(0, Cow("create", path, "--size", "8M", "--cluster-size", clusterSize.ToString()).ExitCode);
        Assert.Equal(0, Cow("io", path, "write", "-P", "0x5a", "0", "300K").ExitCode);
        return path;
    }

    public static TheoryData<string> Cases => new()
    {
        "empty data file", "truncated header", "garbage data file", "header checksum broken", "unknown header flag",
        "empty metadata", "truncated metadata", "garbage metadata", "metadata of another image", "missing metadata",
        "metadata log of another image", "cluster size differs from metadata", "legacy log left by a crash",
        "data file is a folder", "backing chain loop", "metadata page zeroed", "crashed overlay whose base is gone",
        "metadata is a FIFO", "data file is a FIFO", "data file is /dev/zero", "backing is a link to the image itself",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Damage_is_refused_in_one_line_and_nothing_is_modified(string damage)
    {
        using var dir = new TempDir();
        string img = GoodImage(dir);
        Damage(dir, img, damage);
        string before = Sums(dir.Path);
        foreach (var args in new[] { new[] { "io", img, "write", "0", "4K" }, new[] { "io", img, "read", "0", "4K" } })
        {
            var r = Cow(args);
            Assert.True(r.ExitCode != 0, $"{damage}: `{string.Join(' ', args[..3])}` succeeded: {r}");
            Assert.True(r.Error.Trim().Split('\n').Length == 1 && r.Error.StartsWith("cowdisk: "), $"{damage}: not one line: {r}");
            Assert.DoesNotContain("   at ", r.Error);
            Assert.DoesNotContain("{0}", r.Error);   // no unformatted library templates
            Assert.True(Sums(dir.Path) == before, $"{damage}: `{string.Join(' ', args[..3])}` modified a file");
        }
    }

    private static void MakeFifo(string path)
    {
        var made = CommandRunner.Run("mkfifo", [path]);
        Assert.True(made.ExitCode == 0, made.ToString());
    }

    private static void Damage(TempDir dir, string img, string damage)
    {
        string meta = img + ".meta.db", log = img + ".meta.log";
        switch (damage)
        {
            case "empty data file": File.WriteAllBytes(img, Array.Empty<byte>()); break;
            // Opening a FIFO waits for a writer: every command hung on one (a tester's find).
            case "metadata is a FIFO": File.Delete(meta); MakeFifo(meta); break;
            case "data file is a FIFO": File.Delete(img); MakeFifo(img); break;
            case "data file is /dev/zero": File.Delete(img); File.CreateSymbolicLink(img, "/dev/zero"); break;
            case "truncated header": Truncate(img, 30); break;
            case "garbage data file": File.WriteAllBytes(img, RandomBytes(1 << 20)); break;
            case "header checksum broken": Poke(img, ImageHeader.VirtualSizeOffset + 7, 0x01); break;
            case "unknown header flag": RewriteHeader(img, h => h with { Flags = (ImageHeaderFlags)0x80 }); break;
            case "empty metadata": File.WriteAllBytes(meta, Array.Empty<byte>()); break;
            case "truncated metadata": Truncate(meta, 4096); break;
            case "garbage metadata": File.WriteAllBytes(meta, RandomBytes(64 * 1024)); break;
            case "metadata of another image":
                string other = GoodImage(dir, "other.img");
                File.Copy(other + ".meta.db", meta, overwrite: true);
                break;
            case "missing metadata": File.Delete(meta); break;
            case "metadata log of another image":
                // A crashed writer of another image left its log: copy a log that holds a commit.
                string third = dir.File("third.img");
                Assert.Equal(0, Cow("create", third, "--size", "1M").ExitCode);
                CopyLogOfOpenImage(third, log);
                break;
            case "cluster size differs from metadata": RewriteHeader(img, h => h with { ClusterSize = 4096 }); break;
            case "legacy log left by a crash": File.WriteAllBytes(img + ".meta-log.db", RandomBytes(8192)); break;
            case "data file is a folder":
                File.Delete(img);
                Directory.CreateDirectory(img);
                break;
            case "backing is a link to the image itself":   // the overlay's own data file, header and all, as its base
                string raw = dir.File("b.raw");
                File.WriteAllBytes(raw, new byte[8 << 20]);
                Assert.Equal(0, Cow("create", img, "--backing", "b.raw", "--backing-format", "raw", "--force").ExitCode);
                File.Delete(raw);
                File.CreateSymbolicLink(raw, "disk.img");
                break;
            case "backing chain loop":
                // The CLI refuses to make a loop, so build one by renaming: disk → a → x, then x2 → disk moved over x.
                string x = dir.File("x.img"), a = dir.File("a.img"), x2 = dir.File("x2.img");
                Assert.Equal(0, Cow("create", x, "--size", "8M").ExitCode);
                Assert.Equal(0, Cow("create", a, "--backing", "x.img").ExitCode);
                Assert.Equal(0, Cow("create", img, "--backing", "a.img", "--force").ExitCode);
                Assert.Equal(0, Cow("create", x2, "--backing", "disk.img").ExitCode);
                foreach (var suffix in new[] { "", ".meta.db", ".meta.log" }) File.Move(x2 + suffix, x + suffix, overwrite: true);
                break;
            case "metadata page zeroed":
                // LiteDB's consistency checks fail on it; LiteDB then tries to mark the file invalid: refused.
                var bytes = File.ReadAllBytes(meta);
                Array.Clear(bytes, 2 * 8192, 8192);
                File.WriteAllBytes(meta, bytes);
                break;
            case "crashed overlay whose base is gone":
                // The image's log holds commits (a crash left it); the refused open must not checkpoint it.
                string b = dir.File("b.img");
                Assert.Equal(0, Cow("create", b, "--size", "8M").ExitCode);
                Assert.Equal(0, Cow("create", img, "--backing", "b.img", "--force").ExitCode);
                using (var open = CowDisk.Engine.Images.CowImage.Open(img, new CowDisk.Engine.Images.ImageOpenOptions()))
                {
                    open.Write(0, new byte[70000]);
                    open.Flush();
                    foreach (var suffix in new[] { "", ".meta.db", ".meta.log" })
                        using (var cp = System.Diagnostics.Process.Start("cp", new[] { "--", img + suffix, img + suffix + ".crash" })!) cp.WaitForExit();
                }
                foreach (var suffix in new[] { "", ".meta.db", ".meta.log" }) File.Move(img + suffix + ".crash", img + suffix, overwrite: true);
                Assert.True(new FileInfo(log).Length > 0, "the crash left no log");
                foreach (var suffix in new[] { "", ".meta.db", ".meta.log" }) File.Delete(b + suffix);
                break;
            default: throw new ArgumentException(damage);
        }
    }

    // While `io` of another image is writing we cannot stop it mid-way from here; instead run a writer that
    // commits (create marks the image in use with a commit) and copy its log with cp before it checkpoints.
    private static void CopyLogOfOpenImage(string image, string to)
    {
        using var hold = CowDisk.Engine.Images.CowImage.Open(image, new CowDisk.Engine.Images.ImageOpenOptions());
        using (var cp = System.Diagnostics.Process.Start("cp", new[] { "--", image + ".meta.log", to })!) cp.WaitForExit();
        Assert.True(new FileInfo(to).Length > 0, "the other image's log was empty");
    }

    private static byte[] RandomBytes(int n)
    {
        var b = new byte[n];
        new Random(n).NextBytes(b);
        return b;
    }

    private static void Truncate(string path, long length)
    {
        using var f = new FileStream(path, FileMode.Open);
        f.SetLength(length);
    }

    private static void Poke(string path, long offset, byte xor)
    {
        var bytes = File.ReadAllBytes(path);
        bytes[offset] ^= xor;
        File.WriteAllBytes(path, bytes);
    }

    private static void RewriteHeader(string path, Func<ImageHeader, ImageHeader> change)
    {
        var bytes = File.ReadAllBytes(path);
        var header = change(ImageHeader.Read(bytes));
        header.Write(bytes);
        File.WriteAllBytes(path, bytes);
    }

    [Fact]
    public void A_garbage_metadata_log_is_an_unfinished_commit_dropped_at_open_and_data_survives()
    {
        using var dir = new TempDir();
        string img = GoodImage(dir);
        File.WriteAllBytes(img + ".meta.log", RandomBytes(3 * 8704 + 100));
        string before = Sums(dir.Path);
        Assert.Equal(0, Cow("io", img, "read", "--verify", "0x5a", "0", "300K").ExitCode);
        Assert.True(Sums(dir.Path) == before, "a read-only open modified a file");
        Assert.Equal(0, Cow("io", img, "write", "-P", "0x11", "1M", "64K").ExitCode);
        Assert.Equal(0, Cow("io", img, "read", "--verify", "0x5a", "0", "300K").ExitCode);
        Assert.Equal(0, Cow("io", img, "read", "--verify", "0x11", "1M", "64K").ExitCode);
        Assert.True(new FileInfo(img + ".meta.log").Length < 3 * 8704, "the garbage was not cut off");
    }

    [Fact]
    public void A_file_system_mounted_read_only_refuses_writers_in_one_line_and_serves_readers()
    {
        if (Environment.UserName != "root") return;   // needs mount; CI runs as root
        using var dir = new TempDir();
        string img = GoodImage(dir);
        string mnt = dir.File("ro");
        Directory.CreateDirectory(mnt);
        CommandRunner.Check("mount", "--bind", dir.Path, mnt);
        try
        {
            CommandRunner.Check("mount", "-o", "remount,bind,ro", mnt);
            string roImg = Path.Combine(mnt, "disk.img");
            var w = Cow("io", roImg, "write", "0", "4K");
            Assert.NotEqual(0, w.ExitCode);
            Assert.Single(w.Error.Trim().Split('\n'));
            Assert.Contains("read-only", w.Error, StringComparison.OrdinalIgnoreCase);
            var r = Cow("io", roImg, "read", "--verify", "0x5a", "0", "300K");
            Assert.True(r.ExitCode == 0, r.ToString());
        }
        finally { CommandRunner.Run("umount", [mnt]); }
    }
}
