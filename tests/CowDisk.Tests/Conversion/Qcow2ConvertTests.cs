using System.Text.Json;
using CowDisk.Engine.Convert;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using CowDisk.Tests.Qcow2;
using Xunit;

namespace CowDisk.Tests.Conversion;

/// <summary>convert to and from qcow2 against qemu-img: every qcow2 written passes qemu-img check, every byte survives.</summary>
public sealed class Qcow2ConvertTests
{
    private static ConvertResult Convert(string source, string output, ConvertFormat to, int? clusterSize = null, bool compress = false, bool snapshots = false) =>
        ImageConverter.Convert(ImageRef.Parse(source), output, new ConvertOptions { Target = to, ClusterSize = clusterSize, Compress = compress, WithSnapshots = snapshots });

    /// <summary>A raw disk with data islands of odd sizes, zeros written as data, and holes.</summary>
    private static byte[] MakeRaw(string path, long size, int seed)
    {
        var model = new byte[size];
        var rng = new Random(seed);
        for (int i = 0; i < 12; i++)
        {
            long at = rng.NextInt64(0, size);
            int n = (int)Math.Min(rng.Next(1, 300_000), size - at);
            if (i % 4 == 3) continue;   // leave some picks as holes
            var data = new byte[n];
            if (i % 3 == 0) rng.NextBytes(data);
            else Array.Fill(data, (byte)(i + 1));   // compressible
            data.CopyTo(model, at);
        }
        File.WriteAllBytes(path, model);
        return model;
    }

    private static void QemuCheck(string qcow2)
    {
        var result = CommandRunner.Run("qemu-img", ["check", "--output=json", qcow2]);
        Assert.True(result.ExitCode == 0, $"qemu-img check {qcow2}: {result}");
        var check = JsonDocument.Parse(result.Output).RootElement;
        foreach (string field in new[] { "corruptions", "leaks", "check-errors" })
            if (check.TryGetProperty(field, out var value)) Assert.True(value.GetInt64() == 0, $"qemu-img check {qcow2}: {field} = {value}");
    }

    [Qcow2ToolTheory]
    [InlineData(512, false, 3_000_001L)]
    [InlineData(4096, false, 8L << 20)]
    [InlineData(65536, false, (5L << 20) + 4097)]
    [InlineData(2 << 20, false, 9L << 20)]
    [InlineData(4096, true, 7L << 20)]
    [InlineData(65536, true, (6L << 20) + 511)]
    [InlineData(2 << 20, true, (5L << 20) + 3)]
    public void Raw_to_cowdisk_to_qcow2_to_raw_keeps_every_byte_and_qemu_img_check_passes(int clusterSize, bool compress, long size)
    {
        using var dir = new TempDir();
        var model = MakeRaw(dir.File("in.raw"), size, clusterSize + (compress ? 1 : 0));
        Convert(dir.File("in.raw"), dir.File("disk.img"), ConvertFormat.CowDisk);
        Convert(dir.File("disk.img"), dir.File("disk.qcow2"), ConvertFormat.Qcow2, clusterSize, compress);
        QemuCheck(dir.File("disk.qcow2"));
        Assert.Contains("identical", Qemu.Img("compare", "-f", "raw", "-F", "qcow2", dir.File("in.raw"), dir.File("disk.qcow2")));
        Convert(dir.File("disk.qcow2"), dir.File("out.raw"), ConvertFormat.Raw);
        // qcow2 disks are whole 512-byte sectors (as qemu-img convert makes them): the tail past the raw size reads zeros.
        long sectors = (size + 511) / 512 * 512;
        var expected = new byte[sectors];
        model.CopyTo(expected, 0);
        Qemu.AssertSameBytes(expected, File.ReadAllBytes(dir.File("out.raw")), "raw → cowdisk → qcow2 → raw");
        var info = JsonDocument.Parse(Qemu.Img("info", "--output=json", dir.File("disk.qcow2"))).RootElement;
        Assert.Equal(sectors, info.GetProperty("virtual-size").GetInt64());
        Assert.Equal(clusterSize, info.GetProperty("cluster-size").GetInt32());
    }

    [Qcow2ToolFact]
    public void Qcow2_images_of_every_kind_convert_to_cowdisk_with_qemu_s_bytes_and_stay_sparse()
    {
        using var dir = new TempDir();
        var cases = new List<string>();
        void Make(string name, params string[] options)
        {
            string path = dir.File(name);
            Qemu.Img(["create", "-f", "qcow2", .. options, path, "12M"]);
            Qemu.Io(path, "write -P 0x11 0 100k", "write -z 1M 1M", "write -P 0x22 3M 64k", "discard 3M 32k", "write -P 0x33 11M 1M");
            cases.Add(path);
        }
        Make("v3.qcow2");
        Make("v2.qcow2", "-o", "compat=0.10");
        Make("ext.qcow2", "-o", "extended_l2=on,cluster_size=64k");
        Make("small.qcow2", "-o", "cluster_size=4k");
        Qemu.Img("convert", "-c", "-O", "qcow2", dir.File("v3.qcow2"), dir.File("zlib.qcow2"));
        Qemu.Img("convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", dir.File("v3.qcow2"), dir.File("zstd.qcow2"));
        cases.Add(dir.File("zlib.qcow2"));
        cases.Add(dir.File("zstd.qcow2"));
        foreach (string qcow2 in cases)
        {
            string image = qcow2 + ".img";
            Convert(qcow2, image, ConvertFormat.CowDisk);
            using var converted = CowImage.Open(image, new ImageOpenOptions { ReadOnly = true });
            Qemu.AssertSameBytes(Qemu.ReadAll(qcow2, dir.Path), Qemu.ReadDevice(converted), Path.GetFileName(qcow2));
            // Only the 100k, 64k (less the discard) and 1M of data are allocated; the zero and unallocated clusters are not.
            Assert.True(converted.AllocatedBytes() <= (2L << 20) + (256 << 10), $"{Path.GetFileName(qcow2)}: {converted.AllocatedBytes()} bytes allocated");
        }
    }

    [Qcow2ToolFact]
    public void With_snapshots_every_internal_snapshot_becomes_a_cowdisk_snapshot()
    {
        using var dir = new TempDir();
        string qcow2 = dir.File("vm.qcow2");
        Qemu.Img("create", "-f", "qcow2", qcow2, "8M");
        Qemu.Io(qcow2, "write -P 1 0 2M");
        Qemu.Img("snapshot", "-c", "first", qcow2);
        Qemu.Io(qcow2, "write -P 2 1M 64k", "discard 0 64k");
        Qemu.Img("snapshot", "-c", "second", qcow2);
        Qemu.Io(qcow2, "write -P 3 4M 1M", "write -z 1M 64k");
        var result = Convert(qcow2, dir.File("vm.img"), ConvertFormat.CowDisk, snapshots: true);
        Assert.Equal(2, result.Snapshots);
        // The later passes copy only what changed: far less than three whole disks.
        Assert.True(result.DataBytes < 4L << 20, $"{result.DataBytes} bytes copied for 2 MiB + 2 small changes + 1 MiB");
        foreach (string? snapshot in new[] { "first", "second", null })
        {
            using var view = CowImage.Open(dir.File("vm.img"), new ImageOpenOptions { ReadOnly = true, Snapshot = snapshot });
            Qemu.AssertSameBytes(Qemu.ReadAll(qcow2, dir.Path, snapshot), Qemu.ReadDevice(view), snapshot ?? "live disk");
        }
        using var image = CowImage.Open(dir.File("vm.img"), new ImageOpenOptions { ReadOnly = true });
        Assert.Equal(["first", "second"], image.ListSnapshots().Select(s => s.Name));
        Assert.Empty(image.Check(repair: false).Corruptions);
    }

    [Qcow2ToolFact]
    public void The_cli_converts_a_snapshot_view_to_qcow2_and_stays_quiet_when_piped()
    {
        using var dir = new TempDir();
        string image = dir.File("disk.img");
        using (var disk = CowImage.Create(image, new ImageCreateOptions { Size = 4 << 20 }))
        {
            disk.Write(0, Enumerable.Repeat((byte)7, 1 << 20).ToArray());
            disk.CreateSnapshot("before");
            disk.Write(0, Enumerable.Repeat((byte)8, 4096).ToArray());
        }
        var result = CowdiskExecutable.Run("convert", $"{image}@before", dir.File("old.qcow2"), "--to", "qcow2", "-p", "--compress");
        Assert.True(result.ExitCode == 0, result.ToString());
        Assert.Equal("", result.Error);   // -p draws only on a terminal; piped, nothing
        QemuCheck(dir.File("old.qcow2"));
        Qemu.Io(dir.File("old.qcow2"), "read -P 7 0 1M", "read -P 0 1M 3M");
        var info = CowdiskExecutable.Run("info", dir.File("old.qcow2"), "--output", "json");
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Equal("qcow2", JsonDocument.Parse(info.Output).RootElement.GetProperty("format").GetString());
    }
}

/// <summary>qemu's image locks: qemu and cowdisk each see the other's use of a qcow2 or raw file.</summary>
public sealed class QemuLockTests
{
    [Qcow2ToolFact]
    public void Qemu_cannot_write_a_base_cowdisk_reads_and_cowdisk_cannot_read_what_qemu_writes()
    {
        using var dir = new TempDir();
        string qcow2 = dir.File("base.qcow2");
        Qemu.Img("create", "-f", "qcow2", qcow2, "16M");
        using (var top = CowImage.Create(dir.File("top.img"), new ImageCreateOptions { BackingPath = "base.qcow2" }))
        {
            var write = CommandRunner.Run("qemu-io", ["-c", "write -P 0x13 0 64k", qcow2]);
            Assert.True(write.ExitCode != 0, $"qemu-io wrote a base cowdisk has open: {write}");
            Assert.Contains("lock", write.Output + write.Error);
        }
        using var holder = CommandRunner.Start("qemu-io", ["-c", "sleep 20000", qcow2]);
        try
        {
            // qemu takes its locks as it opens: wait until they are there.
            string inode = $":{CowDisk.Engine.Native.HostFile.Inode(qcow2)} ";
            for (int i = 0; i < 400 && !File.ReadLines("/proc/locks").Any(l => l.Contains("OFDLCK") && l.Contains(inode)); i++) Thread.Sleep(25);
            var refused = Assert.ThrowsAny<CowDisk.Engine.Devices.BlockDeviceException>(() =>
                ImageConverter.Convert(new ImageRef(qcow2, null), dir.File("out.raw"), new ConvertOptions { Target = ConvertFormat.Raw }));
            Assert.Contains("qemu", refused.Message);
        }
        finally { holder.Kill(); holder.WaitForExit(); }
    }
}
