using System.Text.Json;
using CowDisk.Engine.Native;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Cli;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Snapshots;

/// <summary>The snapshot, check, map and diff commands through the real `cowdisk` executable, as a user types them.</summary>
public class SnapshotCliTests
{
    private static CommandRunner.Result Cow(params string[] args) => CowdiskExecutable.Run(args);

    private static void Ok(CommandRunner.Result r) => Assert.True(r.ExitCode == 0, r.ToString());

    [Fact]
    public void Snapshot_walkthrough()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        Ok(Cow("create", d, "--size", "16M"));
        Ok(Cow("io", d, "write", "-P", "0xaa", "0", "4M"));
        var created = Cow("snapshot", "create", d, "before-upgrade");
        Ok(created);
        Assert.Contains("created snapshot 'before-upgrade'", created.Output);
        Ok(Cow("io", d, "write", "-P", "0xbb", "1M", "1M"));
        Ok(Cow("io", d, "discard", "3M", "1M"));

        Ok(Cow("io", $"{d}@before-upgrade", "verify", "-P", "0xaa", "0", "4M"));
        Ok(Cow("io", d, "verify", "-P", "0xbb", "1M", "1M"));
        Ok(Cow("io", d, "verify", "-P", "0", "3M", "1M"));

        var list = JsonDocument.Parse(Cow("snapshot", "list", d, "--output", "json").Output).RootElement;
        Assert.Equal(1, list.GetArrayLength());
        Assert.Equal("before-upgrade", list[0].GetProperty("name").GetString());
        Assert.Equal(2L << 20, list[0].GetProperty("exclusive-bytes").GetInt64());   // the overwritten and the discarded MiB

        var diff = JsonDocument.Parse(Cow("diff", $"{d}@before-upgrade", d, "--output", "json").Output).RootElement;
        Assert.Equal(2L << 20, diff.GetProperty("changed-bytes").GetInt64());
        var ranges = diff.GetProperty("ranges").EnumerateArray().Select(r => (r.GetProperty("start").GetInt64(), r.GetProperty("length").GetInt64())).ToList();
        Assert.Equal(new[] { (1L << 20, 1L << 20), (3L << 20, 1L << 20) }, ranges);

        var map = JsonDocument.Parse(Cow("map", d, "--output", "json").Output).RootElement.EnumerateArray()
            .Select(r => (r.GetProperty("start").GetInt64(), r.GetProperty("length").GetInt64(), r.GetProperty("source").GetString())).ToList();
        Assert.Contains((0L, 1L << 20, "shared"), map);
        Assert.Contains((1L << 20, 1L << 20, "own"), map);
        Assert.Contains((2L << 20, 1L << 20, "shared"), map);
        Assert.Contains((3L << 20, 13L << 20, "unallocated"), map);

        Ok(Cow("check", d));
        Ok(Cow("snapshot", "revert", d, "before-upgrade"));
        Ok(Cow("io", d, "verify", "-P", "0xaa", "0", "4M"));
        Ok(Cow("snapshot", "delete", d, "before-upgrade"));
        Assert.Equal("[]", Cow("snapshot", "list", d, "--output", "json").Output.Trim());
        Ok(Cow("io", d, "verify", "-P", "0xaa", "0", "4M"));
        Ok(Cow("check", d));
    }

    /// <summary>The space test: about 2x, then 1x, then nothing, as du sees the data file.</summary>
    [Fact]
    public void Delete_and_discard_give_the_space_back()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        const long mib = 1 << 20;
        Ok(Cow("create", d, "--size", "256M"));
        Ok(Cow("io", d, "write", "-P", "1", "0", "64M"));
        Ok(Cow("snapshot", "create", d, "s"));
        Ok(Cow("io", d, "write", "-P", "2", "0", "64M"));
        long both = HostFile.AllocatedBytes(d);
        Assert.InRange(both, 128 * mib, 129 * mib);
        Ok(Cow("snapshot", "delete", d, "s"));
        long one = HostFile.AllocatedBytes(d);
        Assert.InRange(one, 64 * mib, 65 * mib);
        Ok(Cow("io", d, "discard", "0", "256M"));
        Assert.InRange(HostFile.AllocatedBytes(d), 0, mib / 4);
        Ok(Cow("check", d));
    }

    [Fact]
    public void Bad_snapshot_requests_fail_in_one_line_and_change_nothing()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        Ok(Cow("create", d, "--size", "4M"));
        Ok(Cow("io", d, "write", "0", "1M"));
        Ok(Cow("snapshot", "create", d, "one"));
        string[] files = [d, d + ".meta.db", d + ".meta.log"];
        string before = CliAssert.Fingerprint(files);
        CliAssert.OneLineError(Cow("snapshot", "create", d, "one"), "already exists");
        CliAssert.OneLineError(Cow("snapshot", "create", d, "a@b"), "'@'");
        CliAssert.OneLineError(Cow("snapshot", "create", d, "a/b"), "'/'");
        CliAssert.OneLineError(Cow("snapshot", "create", d, ""), "empty");
        CliAssert.OneLineError(Cow("snapshot", "delete", d, "two"), "no snapshot named 'two'");
        CliAssert.OneLineError(Cow("snapshot", "revert", d, "two"), "no snapshot named 'two'");
        CliAssert.OneLineError(Cow("io", $"{d}@two", "read", "0", "1"), "no snapshot named 'two'");
        CliAssert.OneLineError(Cow("io", $"{d}@one", "write", "0", "1"), "read-only");
        CliAssert.OneLineError(Cow("snapshot", "create", $"{d}@one", "x"), "not a snapshot view");
        CliAssert.OneLineError(Cow("diff", $"{d}@one", dir.File("other.img")), "does not exist");
        Ok(Cow("create", dir.File("other.img"), "--size", "4M"));
        CliAssert.OneLineError(Cow("diff", $"{d}@one", dir.File("other.img")), "different images");
        CliAssert.OneLineError(Cow("create", $"{d}@two", "--size", "4M"), "would be read as snapshot");
        CliAssert.OneLineError(Cow("snapshot", "create", d, "12"), "all digits");
        CliAssert.OneLineError(Cow("snapshot", "create", d, "a\u200bb"), "invisible");
        CliAssert.OneLineError(Cow("snapshot", "create", d), "Required argument missing");
        CliAssert.OneLineError(Cow("check", "/etc/hostname"), "not a cowdisk image");
        Assert.Equal(before, CliAssert.Fingerprint(files));
    }

    [Fact]
    public void Check_tells_leaks_from_corruption_and_repairs_only_leaks()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        Ok(Cow("create", d, "--size", "4M", "--cluster-size", "64K"));
        Ok(Cow("io", d, "write", "0", "256K"));
        // Bytes in a cluster no mapping references: host space wasted, no data at risk.
        using (var f = new FileStream(d, FileMode.Open, FileAccess.Write)) { f.Seek(20 << 16, SeekOrigin.Begin); f.Write(ModelRunner.Pattern(1 << 16, 9)); }
        string before = CliAssert.Fingerprint(d, d + ".meta.db");
        Assert.Equal(3, Cow("check", d).ExitCode);
        Assert.Equal(before, CliAssert.Fingerprint(d, d + ".meta.db"));   // check alone writes nothing
        var json = JsonDocument.Parse(Cow("check", d, "--output", "json").Output).RootElement;
        Assert.Equal(1, json.GetProperty("leaks").GetInt64());
        Ok(Cow("check", d, "--repair"));
        Ok(Cow("check", d));
        Ok(Cow("io", d, "verify", "-P", "0xcd", "0", "256K"));
        // A metadata file cut short: corruption, exit 2.
        string meta = d + ".meta.db";
        File.WriteAllBytes(meta, File.ReadAllBytes(meta).AsSpan(0, 100).ToArray());
        var bad = Cow("check", d);
        Assert.Equal(2, bad.ExitCode);
        Assert.Contains("ERROR", bad.Output);
    }

    /// <summary>A clone knows which image and which snapshot it was made from: a swapped base is corruption, not silent data.</summary>
    [Fact]
    public void A_clone_notices_a_base_that_is_not_the_one_it_was_made_from()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img"), c = dir.File("clone.img"), b = dir.File("backed.img");
        Ok(Cow("create", d, "--size", "1M"));
        Ok(Cow("io", d, "write", "-P", "0xab", "0", "64K"));
        Ok(Cow("snapshot", "create", d, "s"));
        Ok(Cow("create", c, "--from", $"{d}@s"));
        Ok(Cow("create", b, "--backing", "disk.img@s"));   // --backing IMAGE@SNAPSHOT registers like --from
        CliAssert.OneLineError(Cow("create", d, "--size", "1M", "--force"), "clone");
        Ok(Cow("io", c, "verify", "-P", "0xab", "0", "64K"));
        // Renamed, the clone is no longer found by the image, so its snapshot can go; made again under the same name,
        // the new snapshot is not taken for the old one.
        foreach (var suffix in new[] { "", ".meta.db", ".meta.log" }) File.Move(c + suffix, dir.File("moved.img") + suffix);
        foreach (var suffix in new[] { "", ".meta.db", ".meta.log" }) File.Delete(b + suffix);
        Ok(Cow("snapshot", "delete", d, "s"));
        Ok(Cow("io", d, "write", "-P", "0x77", "0", "64K"));
        Ok(Cow("snapshot", "create", d, "s"));
        CliAssert.OneLineError(Cow("io", dir.File("moved.img"), "read", "0", "1"), "not the one it was made from");
        Assert.Equal(2, Cow("check", dir.File("moved.img")).ExitCode);
    }

    /// <summary>
    /// A cluster overwritten between two snapshots is read only by the older one: it is that snapshot's alone, and
    /// deleting it gives the space back although the newer snapshot stays.
    /// </summary>
    [Fact]
    public void What_only_the_older_of_two_snapshots_reads_is_freed_with_it()
    {
        using var dir = new TempDir();
        string d = dir.File("disk.img");
        const long mib = 1 << 20;
        Ok(Cow("create", d, "--size", "64M"));
        Ok(Cow("io", d, "write", "-P", "1", "0", "8M"));
        Ok(Cow("snapshot", "create", d, "old"));
        Ok(Cow("io", d, "write", "-P", "2", "0", "4M"));   // 4 MiB only 'old' reads from now on
        Ok(Cow("snapshot", "create", d, "new"));
        var list = JsonDocument.Parse(Cow("snapshot", "list", d, "--output", "json").Output).RootElement;
        Assert.Equal(4 * mib, list[0].GetProperty("exclusive-bytes").GetInt64());
        Assert.Equal(0, list[1].GetProperty("exclusive-bytes").GetInt64());
        long before = HostFile.AllocatedBytes(d);
        Ok(Cow("snapshot", "delete", d, "old"));
        Assert.InRange(before - HostFile.AllocatedBytes(d), 4 * mib, 4 * mib + mib / 4);
        Ok(Cow("io", $"{d}@new", "verify", "-P", "2", "0", "4M"));
        Ok(Cow("io", $"{d}@new", "verify", "-P", "1", "4M", "4M"));
        Assert.Equal(0, Cow("check", d).ExitCode);
    }
}
