using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Storage;
using CowDisk.Format.Mapping;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Cli;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Snapshots;

/// <summary>Layer rows no writer produces: every open refuses the image as corrupt, nothing is modified, `check` exits 2.</summary>
public class HostileLayerMetadataTests
{
    private static byte[] Rows(params LayerRecord[] rows)
    {
        var bytes = new byte[rows.Length * LayerRecord.Size];
        for (int i = 0; i < rows.Length; i++) rows[i].Write(bytes.AsSpan(i * LayerRecord.Size));
        return bytes;
    }

    public static TheoryData<string> Cases() => new()
    {
        "layer page not whole records", "layer row empty mask", "layer mask past the block", "layer mask full",
        "layer of a missing mapping", "layer over a missing mapping", "layer page outside the disk", "layer over its own cluster",
        "layer row past the page", "two layers of one mapping",
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Damaged_layer_metadata_is_refused_and_nothing_changes(string damage)
    {
        using var dir = new TempDir();
        string path = dir.File("d.img");
        Guid id;
        long top;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 1 << 20, ClusterSize = 65536 }))
        {
            id = image.ImageId;
            image.Write(0, ModelRunner.Pattern(4 * 65536, 1));   // clusters 1-4, born in epoch 0
            image.CreateSnapshot("a");
            image.Write(4096, ModelRunner.Pattern(4096, 2));     // block 0 layered: born in 1, subcluster 1, over cluster 1
            top = image.Map().Single(r => r.Source == MapSource.Own).FileOffset!.Value >> 16;
        }
        var files = ImageFiles.For(path);
        using (var store = MetadataStore.Open(HostStorage.Instance, files, id, readOnly: false))
        {
            var changes = new MetadataChanges();
            var good = new LayerRecord(0, 1, 0b10, 0, 1);
            switch (damage)
            {
                case "layer page not whole records": changes.Layers.Add((0, new byte[33])); break;
                case "layer row empty mask": changes.Layers.Add((0, Rows(good with { Mask = 0 }))); break;
                case "layer mask past the block": changes.Layers.Add((0, Rows(good with { Mask = 1UL << 20 }))); break;
                case "layer mask full": changes.Layers.Add((0, Rows(good with { Mask = 0xffff }))); break;
                case "layer of a missing mapping": changes.Layers.Add((0, Rows(good, good with { BlockInPage = 2 }))); break;
                case "layer over a missing mapping": changes.Layers.Add((0, Rows(good with { UnderCluster = 999 }))); break;
                case "layer page outside the disk": changes.Layers.Add((1000, Rows(good))); break;
                case "layer over its own cluster": changes.Layers.Add((0, Rows(good with { UnderCluster = top }))); break;
                case "layer row past the page": changes.Layers.Add((0, Rows(good, good with { BlockInPage = 600 }))); break;
                case "two layers of one mapping": changes.Layers.Add((0, Rows(good, good with { Mask = 0b100 }))); break;
            }
            store.Commit(changes);
        }
        string[] all = [files.DataPath, files.MetadataPath, files.MetadataLogPath];
        string before = CliAssert.Fingerprint(all);
        Assert.ThrowsAny<CorruptImageException>(() => CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }).Dispose());
        Assert.ThrowsAny<CorruptImageException>(() => CowImage.Open(path, new ImageOpenOptions()).Dispose());
        Assert.Equal(before, CliAssert.Fingerprint(all));
        var check = CowdiskExecutable.Run("check", path);
        Assert.True(check.ExitCode == 2, $"{damage}: {check}");
        Assert.Equal(before, CliAssert.Fingerprint(all));
    }
}
