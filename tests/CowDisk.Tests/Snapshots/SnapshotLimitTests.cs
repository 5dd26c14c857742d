using CowDisk.Engine.Images;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Storage;
using CowDisk.Format.Mapping;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Snapshots;

public class SnapshotLimitTests
{
    /// <summary>An image that has handed out every epoch refuses the next snapshot and goes on serving I/O.</summary>
    [Fact]
    public void A_snapshot_with_no_epoch_left_is_refused_and_the_disk_keeps_working()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        Guid id;
        using (var img = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }))
        {
            id = img.ImageId;
            img.Write(0, new byte[4096]);
        }
        using (var store = MetadataStore.Open(HostStorage.Instance, ImageFiles.For(path), id, readOnly: false))
            store.Commit(new MetadataChanges { Image = store.Image with { NextEpoch = MappingEntry.MaxEpoch } });
        using var image = CowImage.Open(path, new ImageOpenOptions());
        image.CreateSnapshot("a");   // takes the last epoch
        var refused = Assert.Throws<ImageOpenException>(() => image.CreateSnapshot("b"));
        Assert.Contains("epochs", refused.Message);
        Assert.Throws<ImageOpenException>(() => image.RevertSnapshot("a"));
        image.Write(8192, ModelRunner.Pattern(4096, 3));
        image.Flush();
        var back = new byte[4096];
        image.Read(8192, back);
        Assert.Equal(ModelRunner.Pattern(4096, 3), back);
        Assert.Equal(["a"], image.ListSnapshots().Select(s => s.Name));
        image.Dispose();
        // Every epoch handed out: the image still opens (and still refuses more).
        using var again = CowImage.Open(path, new ImageOpenOptions());
        Assert.Throws<ImageOpenException>(() => again.CreateSnapshot("c"));
        Assert.Throws<ImageOpenException>(() => CowImage.CreateSnapshot(path + "x", "c"));
    }

    /// <summary>A name an earlier build accepted (all digits) still loads; only new names follow today's rules.</summary>
    [Fact]
    public void A_snapshot_named_by_an_earlier_build_still_opens()
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        Guid id;
        using (var img = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 4096 }))
        {
            id = img.ImageId;
            img.CreateSnapshot("first");
        }
        using (var store = MetadataStore.Open(HostStorage.Instance, ImageFiles.For(path), id, readOnly: false))
        {
            var tree = store.LoadTree(out _);
            var old = tree.Find("first")!;
            store.Commit(new MetadataChanges { SnapshotsRemoved = [old], SnapshotsAdded = [old with { Name = "2024" }] });
        }
        using var image = CowImage.Open(path, new ImageOpenOptions());
        Assert.Equal(["2024"], image.ListSnapshots().Select(s => s.Name));
        image.DeleteSnapshot("2024");
    }
}
