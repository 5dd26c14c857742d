using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Engine.Images.Qcow2;
using CowDisk.Format.Qcow2;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>
/// qcow2 images made by qemu-img and qemu-io at test time read through <see cref="Qcow2Image"/>, through
/// <see cref="BaseImage.Open(string, int)"/> and under a cowdisk overlay exactly as `qemu-img convert -O raw` reads them.
/// </summary>
public sealed class Qcow2ReaderTests
{
    /// <summary>24 MiB and a bit: not a multiple of any cluster size from 4K up (qemu rounds sizes to 512 bytes).</summary>
    private const long OddSize = (24L << 20) + 12800;

    private static string[] Workload(long size) =>
    [
        "write -P 0x11 0 100k",
        "write -P 0x22 1000 3000",                     // unaligned, inside a written cluster
        "write -P 0x33 3M 5M",                          // one long run: coalesced reads
        "write -P 0x34 9M 2k",                          // a subcluster with extended L2, a partial cluster otherwise
        "write -P 0x35 9220k 1k",
        "write -z 8M 1M",                               // zero clusters (v3), deallocation (v2)
        "write -z 100k 10k",                            // unaligned zeros: partly written as data
        "discard 4M 1M",
        "write -P 0x44 16M 64k",
        "write -z -u 16M 32k",
        "write -P 0x55 12M 4M",
        "discard 13M 512k",
        $"write -P 0x66 {size - 5000} 5000",            // the tail of a size that is not a cluster multiple
    ];

    [Qcow2ToolTheory]
    [InlineData(512, "1.1", false)]
    [InlineData(4096, "1.1", false)]
    [InlineData(65536, "1.1", false)]
    [InlineData(2 << 20, "1.1", false)]
    [InlineData(512, "0.10", false)]
    [InlineData(4096, "0.10", false)]
    [InlineData(65536, "0.10", false)]
    [InlineData(2 << 20, "0.10", false)]
    [InlineData(16384, "1.1", true)]
    [InlineData(65536, "1.1", true)]
    [InlineData(2 << 20, "1.1", true)]
    public void Reads_what_qemu_reads(int clusterSize, string compat, bool extendedL2)
    {
        using var dir = new TempDir();
        string image = dir.File("disk.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", $"cluster_size={clusterSize},compat={compat}" + (extendedL2 ? ",extended_l2=on" : ""), image, OddSize.ToString());
        Qemu.Io(image, Workload(OddSize));
        var expected = Qemu.ReadAll(image, dir.Path);

        using (var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions()))
        {
            Assert.Equal(compat == "0.10" ? 2 : 3, qcow2.Version);
            Assert.Equal(clusterSize, qcow2.ClusterSize);
            Assert.Equal(extendedL2, qcow2.ExtendedL2);
            Assert.Equal(expected.Length, qcow2.Size);
            Assert.Equal(BlockDeviceCapabilities.ReadOnly, qcow2.Capabilities);
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), "Qcow2Image");
            AssertMapAgrees(image, qcow2.Map());
        }
        using (var viaBase = BaseImage.Open(image, depth: 0))
        {
            Assert.IsType<Qcow2Image>(viaBase);
            Assert.Equal(BaseImage.Qcow2Format, BaseImage.FormatName(viaBase));
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(viaBase, seed: 2), "BaseImage.Open");
        }
        AssertOverlayReads(dir, "disk.qcow2", expected);
    }

    [Qcow2ToolTheory]
    [InlineData(512, "zlib", "1.1", false)]
    [InlineData(4096, "zlib", "1.1", false)]
    [InlineData(65536, "zlib", "1.1", false)]
    [InlineData(2 << 20, "zlib", "1.1", false)]
    [InlineData(65536, "zlib", "0.10", false)]
    [InlineData(4096, "zstd", "1.1", false)]
    [InlineData(65536, "zstd", "1.1", false)]
    [InlineData(2 << 20, "zstd", "1.1", false)]
    [InlineData(65536, "zstd", "1.1", true)]
    public void Reads_compressed_clusters(int clusterSize, string compression, string compat, bool extendedL2)
    {
        using var dir = new TempDir();
        string raw = dir.File("source.raw"), image = dir.File("packed.qcow2");
        File.WriteAllBytes(raw, MixedContent((10 << 20) + 2560, seed: clusterSize));
        string options = $"cluster_size={clusterSize},compat={compat}" + (compression == "zstd" ? ",compression_type=zstd" : "") + (extendedL2 ? ",extended_l2=on" : "");
        Qemu.Img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, raw, image);
        var expected = Qemu.ReadAll(image, dir.Path);
        Assert.Equal(File.ReadAllBytes(raw), expected);
        using (var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions()))
        {
            Assert.Equal(compression == "zstd" ? Qcow2CompressionType.Zstd : Qcow2CompressionType.Zlib, qcow2.CompressionType);
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), "compressed");
            var map = qcow2.Map();
            Assert.Contains(map, r => r.Source == MapSource.Own && r.FileOffset is null);   // compressed data has no file offset
            AssertMapAgrees(image, map);
        }
        AssertOverlayReads(dir, "packed.qcow2", expected);
    }

    private static byte[] SnapshotBytes(byte[] convertedAtCurrentSize)
    {
        Assert.True(convertedAtCurrentSize.AsSpan(16 << 20).IndexOfAnyExcept((byte)0) < 0);
        return convertedAtCurrentSize[..(16 << 20)];
    }

    /// <summary>Text-like runs (compressible), random runs (stored uncompressed by qemu) and zero runs (left unallocated).</summary>
    internal static byte[] MixedContent(int length, int seed)
    {
        var bytes = new byte[length];
        var rng = new Random(seed);
        for (int at = 0; at < length;)
        {
            int n = Math.Min(length - at, rng.Next(1, 300_000));
            switch (rng.Next(3))
            {
                case 0:
                    for (int i = 0; i < n; i++) bytes[at + i] = (byte)"the quick brown fox jumps over the lazy dog "[(at + i) % 44];
                    break;
                case 1: rng.NextBytes(bytes.AsSpan(at, n)); break;
                default: break;   // zeros
            }
            at += n;
        }
        return bytes;
    }

    [Qcow2ToolTheory]
    [InlineData("1.1")]
    [InlineData("0.10")]
    public void Reads_internal_snapshots_by_name_and_id(string compat)
    {
        using var dir = new TempDir();
        string image = dir.File("snap.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", $"cluster_size=65536,compat={compat}", image, "16M");
        Qemu.Io(image, "write -P 0xa1 0 3M", "write -P 0xa2 10M 100k");
        Qemu.Img("snapshot", "-c", "first", image);
        Qemu.Io(image, "write -P 0xb1 1M 3M", "write -z 10M 64k", "discard 0 64k");
        Qemu.Img("snapshot", "-c", "second", image);
        bool v3 = compat == "1.1";
        if (v3) Qemu.Img("resize", image, "24M");   // qemu cannot resize a v2 image that has snapshots
        Qemu.Io(image, v3 ? "write -P 0xc1 20M 1M" : "write -P 0xc1 15M 1M", "write -P 0xc2 0 4k");

        // qemu-img convert -l reads a snapshot at the image's current size (zeros past the snapshot's); we give the
        // snapshot its own size, from its table entry.
        var first = SnapshotBytes(Qemu.ReadAll(image, dir.Path, "first"));
        var second = SnapshotBytes(Qemu.ReadAll(image, dir.Path, "second"));
        var active = Qemu.ReadAll(image, dir.Path);
        Assert.Equal((v3 ? 24 : 16) << 20, active.Length);

        using (var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions()))
        {
            Qemu.AssertSameBytes(active, Qemu.ReadDevice(qcow2), "active");
            Assert.Null(qcow2.Snapshot);
            Assert.Equal(["first", "second"], qcow2.Snapshots.Select(s => s.Name));
            Assert.Equal(["1", "2"], qcow2.Snapshots.Select(s => s.Id));
            Assert.All(qcow2.Snapshots, s => Assert.Equal(16L << 20, s.VirtualSize));
            Assert.All(qcow2.Snapshots, s => Assert.Equal(0, s.VmStateSize));
            Assert.All(qcow2.Snapshots, s => Assert.InRange(s.CreatedUtc, DateTime.UtcNow.AddHours(-1), DateTime.UtcNow.AddMinutes(1)));
            var info = BaseImage.Info(qcow2);
            Assert.Equal(["first", "second"], info.Snapshots!.Select(s => s.Name));
            Assert.Equal(16L << 20, info.Snapshots![0].VirtualSize);
        }
        using (var byName = Qcow2Image.Open(image, new Qcow2OpenOptions { Snapshot = "first" }))
        {
            Assert.Equal("first", byName.Snapshot);
            Assert.Equal(16L << 20, byName.Size);
            Qemu.AssertSameBytes(first, Qemu.ReadDevice(byName), "snapshot first");
        }
        using (var byId = Qcow2Image.Open(image, new Qcow2OpenOptions { Snapshot = "2" }))
        {
            Assert.Equal("second", byId.Snapshot);
            Qemu.AssertSameBytes(second, Qemu.ReadDevice(byId), "snapshot 2");
        }
        using (var viaRef = BaseImage.Open(image + "@first", depth: 0))
            Qemu.AssertSameBytes(first, Qemu.ReadDevice(viaRef), "IMAGE@first");
        using (var viaReading = BaseImage.OpenForReading(ImageRef.Parse(image + "@second"), new CowDisk.Engine.EngineSettings()))
            Qemu.AssertSameBytes(second, Qemu.ReadDevice(viaReading), "OpenForReading IMAGE@second");
        Assert.Contains("no snapshot named 'third'", Assert.Throws<ImageOpenException>(() => Qcow2Image.Open(image, new Qcow2OpenOptions { Snapshot = "third" })).Message);
        // A cowdisk overlay on a qcow2 snapshot.
        AssertOverlayReads(dir, "snap.qcow2@first", first);
    }

    [Qcow2ToolFact]
    public void Reads_a_chain_qcow2_over_qcow2_over_raw()
    {
        using var dir = new TempDir();
        var baseBytes = new byte[(12 << 20) + 1536];
        new Random(7).NextBytes(baseBytes);
        File.WriteAllBytes(dir.File("base.raw"), baseBytes);
        string mid = dir.File("mid.qcow2"), top = dir.File("top.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", mid);
        Qemu.Io(mid, "write -P 0x21 1M 1M", "write -z 3M 256k", "discard 5M 64k", "write -P 0x22 6M 5000", $"write -P 0x23 {baseBytes.Length - 700} 700");
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536,extended_l2=on", "-b", "mid.qcow2", "-F", "qcow2", top, "20M");
        Qemu.Io(top, "write -P 0x31 1536k 2k", "write -P 0x32 2M 100k", "write -z 4M 64k", "write -P 0x33 14M 1M", "write -P 0x34 7M 3000");
        var expected = Qemu.ReadAll(top, dir.Path);

        using (var qcow2 = Qcow2Image.Open(top, new Qcow2OpenOptions()))
        {
            Assert.Equal("mid.qcow2", qcow2.BackingFile);
            Assert.Equal("qcow2", qcow2.BackingFormat);
            var midImage = Assert.IsType<Qcow2Image>(qcow2.Backing);
            Assert.Equal("raw", midImage.BackingFormat);
            Assert.IsType<RawFileDevice>(midImage.Backing);
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), "top of the chain");
            AssertMapAgrees(top, qcow2.Map(), withDepth: true);
            var info = BaseImage.Info(qcow2);
            Assert.Equal(("qcow2", 3, "mid.qcow2"), (info.Format, info.FormatVersion!.Value, info.BackingFile!));
            Assert.Equal(("qcow2", "raw"), (info.Backing!.Format, info.Backing.Backing!.Format));
        }
        AssertOverlayReads(dir, "top.qcow2", expected);
    }

    [Qcow2ToolFact]
    public void A_backing_declared_raw_is_read_raw_even_when_it_looks_like_qcow2()
    {
        using var dir = new TempDir();
        // A "raw" disk whose first bytes are a qcow2 header naming /etc/passwd: probing it would follow that.
        string inner = dir.File("inner.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "/etc/passwd", "-F", "raw", inner, "1M");
        File.Move(inner, dir.File("disk.raw"));
        string top = dir.File("top.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "disk.raw", "-F", "raw", top, "1M");
        Qemu.Io(top, "write -P 0x77 512k 4k");
        var expected = Qemu.ReadAll(top, dir.Path);
        using var qcow2 = Qcow2Image.Open(top, new Qcow2OpenOptions());
        Assert.IsType<RawFileDevice>(qcow2.Backing);
        Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), "raw backing");
        Assert.Equal(0x514649FBu, System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(Qemu.ReadDevice(qcow2)));
    }

    [Qcow2ToolFact]
    public void Preallocated_images_read_as_qemu_reads_them()
    {
        using var dir = new TempDir();
        foreach (var (name, options) in new[] { ("meta.qcow2", "preallocation=metadata"), ("meta2.qcow2", "preallocation=metadata,compat=0.10"), ("falloc.qcow2", "preallocation=falloc") })
        {
            string image = dir.File(name);
            Qemu.Img("create", "-q", "-f", "qcow2", "-o", options, image, "8M");
            Qemu.Io(image, "write -P 0x5a 1M 100k", "write -z 2M 64k");
            var expected = Qemu.ReadAll(image, dir.Path);
            using var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions());
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), name);
            AssertMapAgrees(image, qcow2.Map());
        }
    }

    [Qcow2ToolFact]
    public void A_tiny_l2_cache_reads_the_same_and_stays_bounded()
    {
        using var dir = new TempDir();
        string image = dir.File("wide.qcow2");
        // 512-byte clusters: one L2 table maps only 32 KiB, so a 24 MiB disk has hundreds of them.
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=512", image, OddSize.ToString());
        Qemu.Io(image, Workload(OddSize));
        var expected = Qemu.ReadAll(image, dir.Path);
        using var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions { L2CacheBytes = 2048 });
        Assert.Equal(4, qcow2.L2CacheCapacity);
        Qemu.AssertSameBytes(expected, Qemu.ReadDevice(qcow2), "4-table cache");
        Assert.True(qcow2.L2TableLoads > 4);
        using var roomy = Qcow2Image.Open(image, new Qcow2OpenOptions());
        Assert.True(roomy.L2CacheCapacity <= (int)(OddSize / (512 * 64)) + 1);   // never more slots than tables
    }

    [Qcow2ToolFact]
    public void Concurrent_readers_see_the_same_bytes()
    {
        using var dir = new TempDir();
        string raw = dir.File("source.raw"), image = dir.File("mixed.qcow2");
        File.WriteAllBytes(raw, MixedContent(8 << 20, seed: 3));
        Qemu.Img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", raw, image);
        Qemu.Io(image, "write -P 0x99 1M 1M", "write -z 3M 100k");
        var expected = Qemu.ReadAll(image, dir.Path);
        using var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions { L2CacheBytes = 16384 });
        var errors = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var threads = Enumerable.Range(0, 6).Select(t => new Thread(() =>
        {
            var rng = new Random(t);
            var buffer = new byte[300_000];
            for (int i = 0; i < 400; i++)
            {
                int length = rng.Next(1, buffer.Length);
                long at = rng.NextInt64(0, expected.Length - length);
                qcow2.Read(at, buffer.AsSpan(0, length));
                if (!buffer.AsSpan(0, length).SequenceEqual(expected.AsSpan((int)at, length))) errors.Enqueue($"thread {t}: {at}+{length}");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(errors);
    }

    [Qcow2ToolTheory]
    [InlineData("none")]
    [InlineData("zstd")]
    public void A_warm_read_allocates_nothing(string compression)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("base.raw"), MixedContent(6 << 20, seed: 5));
        string image = dir.File("warm.qcow2");
        if (compression == "zstd")
            Qemu.Img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096,compression_type=zstd", dir.File("base.raw"), image);
        else
        {
            Qemu.Img("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw", "-F", "raw", image, "8M");
            Qemu.Io(image, "write -P 0x11 1M 1M", "write -z 3M 64k", "write -P 0x12 5000 3000");
        }
        // A cache of 8 tables for 4 KiB clusters: reading 8 MiB misses and reuses slots all the time.
        using var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions { L2CacheBytes = 8 * 4096 });
        var buffer = new byte[(2 << 20) + 3];
        void ReadAll()
        {
            for (long at = 0; at < qcow2.Size; at += buffer.Length)
                qcow2.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, qcow2.Size - at)));
            for (long at = 100; at + 700 < qcow2.Size; at += 123_457) qcow2.Read(at, buffer.AsSpan(0, 700));
        }
        ReadAll();
        ReadAll();
        // The runtime may allocate on this thread now and then while it tiers code up (more so when other tests
        // load the machine); a read that allocated would allocate in every pass, so the quietest pass must be 0.
        var passes = new List<long>();
        for (int pass = 0; pass < 4; pass++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            ReadAll();
            passes.Add(GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.True(passes.Min() == 0, $"bytes allocated by warm passes of reads: {string.Join(", ", passes)}");
    }

    [Qcow2ToolFact]
    public void Is_read_only()
    {
        using var dir = new TempDir();
        string image = dir.File("ro.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", image, "1M");
        var before = File.ReadAllBytes(image);
        using (var qcow2 = Qcow2Image.Open(image, new Qcow2OpenOptions()))
        {
            Assert.Throws<BlockDeviceException>(() => qcow2.Write(0, new byte[512]));
            Assert.Throws<BlockDeviceException>(() => qcow2.Discard(0, 512));
            Assert.Throws<BlockDeviceException>(() => qcow2.WriteZeroes(0, 512));
            qcow2.Flush();
            Assert.Throws<BlockDeviceException>(() => qcow2.Read(1 << 20, new byte[1]));
        }
        Assert.Equal(before, File.ReadAllBytes(image));
    }

    /// <summary>A cowdisk overlay whose base is the qcow2 (named relative to the overlay's folder) reads the same bytes.</summary>
    private static void AssertOverlayReads(TempDir dir, string backing, byte[] expected)
    {
        string overlay = dir.File($"overlay-{Guid.NewGuid():N}.img");
        using (var image = CowImage.Create(overlay, new ImageCreateOptions { BackingPath = backing }))
        {
            Assert.Equal(expected.Length, image.Size);
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(image, seed: 3), $"cowdisk overlay on {backing}");
            var runs = image.MapRange(0, image.Size);
            Assert.Equal(image.Size, runs.Sum(r => r.Length));
            Assert.DoesNotContain(runs, r => r.Depth == 0 && r.Source != MapSource.Unallocated);
        }
        using (var reopened = CowImage.Open(overlay, new ImageOpenOptions { ReadOnly = true }))
        {
            Assert.Equal("qcow2", reopened.GetInfo().Backing!.Format);
            Qemu.AssertSameBytes(expected, Qemu.ReadDevice(reopened, seed: 4), $"reopened overlay on {backing}");
        }
    }

    /// <summary>Our map and `qemu-img map` say the same (data, zero or unallocated; and the layer, when asked) for every byte.</summary>
    internal static void AssertMapAgrees(string image, List<MapRun> ours, bool withDepth = false)
    {
        var theirs = Qemu.Map(image);
        Assert.Equal(theirs.Sum(r => r.Length), ours.Sum(r => r.Length));
        var cuts = ours.Select(r => r.Start).Concat(theirs.Select(r => r.Start)).Append(ours.Sum(r => r.Length)).Distinct().Order().ToList();
        int i = 0, j = 0;
        for (int k = 0; k + 1 < cuts.Count; k++)
        {
            long at = cuts[k];
            while (ours[i].Start + ours[i].Length <= at) i++;
            while (theirs[j].Start + theirs[j].Length <= at) j++;
            char mine = Qemu.ClassOf(ours[i]), qemu = theirs[j].Class;
            Assert.True(mine == qemu, $"{image} at {at}: ours {ours[i]}, qemu's {theirs[j]}");
            if (withDepth) Assert.True(ours[i].Depth == theirs[j].Depth, $"{image} at {at}: depth {ours[i].Depth}, qemu's {theirs[j].Depth}");
        }
    }
}
