using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Snapshots;
using CowDisk.Engine.Storage;
using CowDisk.Format.Mapping;
using CowDisk.Tests.Cli;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Snapshots;

/// <summary>
/// Snapshot metadata that no writer produces (as a hostile or damaged file would hold it): every open refuses it
/// with a corruption error, nothing is modified, and `check` exits 2.
/// </summary>
public class HostileSnapshotMetadataTests
{
    private static byte[] Rows(params DeadRecord[] rows)
    {
        var bytes = new byte[rows.Length * DeadRecord.Size];
        for (int i = 0; i < rows.Length; i++) rows[i].Write(bytes.AsSpan(i * DeadRecord.Size));
        return bytes;
    }

    public static TheoryData<string> Cases() => new()
    {
        "dead page not whole records", "dead row death before birth", "dead row unknown source", "dead row past the data file",
        "dead row cluster 0", "dead page outside the disk", "epoch parent missing", "two roots", "snapshot of an unknown epoch",
        "snapshot of the head", "two snapshots one name", "dead row unknown epoch", "live birth off the head's path",
        "cluster used twice by dead and live",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Damaged_snapshot_metadata_is_refused_and_nothing_changes(string damage)
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        Guid id;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }))
        {
            id = image.ImageId;
            image.Write(0, ModelRunner.Pattern(16384, 1));
            image.CreateSnapshot("a");
            image.Write(0, ModelRunner.Pattern(4096, 2));   // block 0 copied: a dead extent (birth 0, death 1)
        }
        var files = ImageFiles.For(path);
        using (var store = MetadataStore.Open(HostStorage.Instance, files, id, readOnly: false))
        {
            var changes = new MetadataChanges();
            var snapshot = new SnapshotInfo(7, "b", 0, DateTime.UtcNow);
            switch (damage)
            {
                case "dead page not whole records": changes.Dead.Add((0, new byte[33])); break;
                case "dead row death before birth": changes.Dead.Add((0, Rows(new DeadRecord(0, 1, MappingSource.Data, 1, 1, 1)))); break;
                case "dead row unknown source": var r = Rows(new DeadRecord(0, 1, MappingSource.Data, 0, 1, 1)); r[DeadRecord.SourceOffset] = 9; changes.Dead.Add((0, r)); break;
                case "dead row past the data file": changes.Dead.Add((0, Rows(new DeadRecord(0, 1, MappingSource.Data, 0, 1, 999)))); break;
                case "dead row cluster 0": changes.Dead.Add((0, Rows(new DeadRecord(0, 1, MappingSource.Data, 0, 1, 0)))); break;
                case "dead page outside the disk": changes.Dead.Add((1000, Rows(new DeadRecord(0, 1, MappingSource.Zero, 0, 1, 0)))); break;
                case "epoch parent missing": changes.EpochsAdded.Add((1, 77)); break;
                case "two roots": changes.EpochsAdded.Add((1, null)); break;
                case "snapshot of an unknown epoch": changes.SnapshotsAdded.Add(snapshot with { Epoch = 55 }); break;
                case "snapshot of the head": changes.SnapshotsAdded.Add(snapshot with { Epoch = 1 }); break;
                case "two snapshots one name": changes.SnapshotsAdded.Add(snapshot with { Name = "a", Epoch = 1 }); break;
                case "dead row unknown epoch": changes.Dead.Add((0, Rows(new DeadRecord(5, 1, MappingSource.Zero, 0, 3, 0)))); break;
                case "live birth off the head's path": changes.Image = store.Image with { Epoch = 0, NextEpoch = 2 }; break;
                case "cluster used twice by dead and live": changes.Dead.Add((0, Rows(new DeadRecord(0, 1, MappingSource.Data, 0, 1, 2)))); break;
            }
            store.Commit(changes);
        }
        string[] all = [files.DataPath, files.MetadataPath, files.MetadataLogPath];
        string before = CliAssert.Fingerprint(all);
        Assert.ThrowsAny<CorruptImageException>(() => CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }).Dispose());
        Assert.ThrowsAny<CorruptImageException>(() => CowImage.Open(path, new ImageOpenOptions()).Dispose());
        Assert.Equal(before, CliAssert.Fingerprint(all));
        // Snapshot create of a closed image validates everything but the live mappings, which it does not read or change
        // (that keeps it O(1)); damage found only by comparing with them is left to the next open or check.
        if (damage is not ("live birth off the head's path" or "cluster used twice by dead and live"))
            Assert.ThrowsAny<BlockDeviceException>(() => CowImage.CreateSnapshot(path, "another"));
        Assert.Equal(before, CliAssert.Fingerprint(all));
        var check = CowdiskExecutable.Run("check", path);
        Assert.True(check.ExitCode == 2, $"{damage}: {check}");
        Assert.Equal(before, CliAssert.Fingerprint(all));
    }
}

public class UnreadDeadExtentTests
{
    /// <summary>A dead extent no snapshot reads (a snapshot record lost) is a leak: check exits 3, --repair frees it, data intact.</summary>
    [Fact]
    public void A_dead_extent_no_snapshot_reads_is_a_leak_that_repair_frees()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        Guid id;
        SnapshotInfo snap;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }))
        {
            id = image.ImageId;
            image.Write(0, ModelRunner.Pattern(8192, 1));
            snap = image.CreateSnapshot("a");
            image.Write(0, ModelRunner.Pattern(8192, 2));   // blocks 0-1 copied: two dead extents only 'a' reads
        }
        using (var store = MetadataStore.Open(HostStorage.Instance, ImageFiles.For(path), id, readOnly: false))
            store.Commit(new MetadataChanges { SnapshotsRemoved = [snap] });   // the snapshot's record is lost
        var check = CowdiskExecutable.Run("check", path, "--output", "json");
        Assert.True(check.ExitCode == 3, check.ToString());
        Assert.Contains("\"leaks\": 2", check.Output);
        var repair = CowdiskExecutable.Run("check", path, "--repair");
        Assert.True(repair.ExitCode == 0, repair.ToString());
        Assert.Equal(0, CowdiskExecutable.Run("check", path).ExitCode);
        Assert.Equal(0, CowdiskExecutable.Run("io", path, "read", "0", "8K").ExitCode);
        using var reopened = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        var back = new byte[8192];
        reopened.Read(0, back);
        Assert.Equal(ModelRunner.Pattern(8192, 2), back);
    }
}
