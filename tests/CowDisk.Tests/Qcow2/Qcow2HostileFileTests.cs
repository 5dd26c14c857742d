using System.Buffers.Binary;
using System.Text;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Engine.Images.Qcow2;
using CowDisk.Format.Qcow2;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>
/// qcow2 files made hostile by patching bytes of a valid one (or by asking qemu-img for features we refuse): each
/// is refused with one clear line, as <see cref="ImageOpenException"/> at open or <see cref="CorruptImageException"/>
/// when the read reaches the broken table — never another exception, a hang or an unbounded allocation.
/// </summary>
public sealed class Qcow2HostileFileTests
{
    private const long DiskSize = 4 << 20;

    /// <summary>A valid v3 image (64K clusters unless told) with data in its first clusters and, if asked, compressed.</summary>
    private static string MakeValid(TempDir dir, string name = "disk.qcow2", string options = "cluster_size=65536", bool compressed = false)
    {
        string image = dir.File(name);
        if (compressed)
        {
            string raw = dir.File(name + ".src");
            File.WriteAllBytes(raw, Qcow2ReaderTests.MixedContent((int)DiskSize, seed: 11));
            Qemu.Img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", options, raw, image);
            File.Delete(raw);
        }
        else
        {
            Qemu.Img("create", "-q", "-f", "qcow2", "-o", options, image, DiskSize.ToString());
            Qemu.Io(image, "write -P 0x5a 0 300k", "write -P 0x5b 2M 64k");
        }
        return image;
    }

    private static Qcow2Header HeaderOf(string image) => Qcow2Header.Read(File.ReadAllBytes(image).AsSpan(0, 112));

    private static void Patch(string image, long offset, ReadOnlySpan<byte> bytes)
    {
        using var file = new FileStream(image, FileMode.Open, FileAccess.Write);
        file.Position = offset;
        file.Write(bytes);
    }

    private static void PatchU32(string image, long offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        Patch(image, offset, b);
    }

    private static void PatchU64(string image, long offset, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        Patch(image, offset, b);
    }

    private static ulong U64At(string image, long offset)
    {
        using var file = new FileStream(image, FileMode.Open, FileAccess.Read);
        var b = new byte[8];
        file.Position = offset;
        file.ReadExactly(b);
        return BinaryPrimitives.ReadUInt64BigEndian(b);
    }

    /// <summary>Where the L2 table of the first L1 entry is.</summary>
    private static long FirstL2Table(string image) => (long)(U64At(image, (long)HeaderOf(image).L1TableOffset) & Qcow2L1Entry.OffsetMask);

    /// <summary>Opens and reads the whole disk (and maps it); returns what was thrown. A hang fails after two minutes.</summary>
    private static Exception Refusal(string image, Qcow2OpenOptions? options = null)
    {
        var attempt = Task.Run(() =>
        {
            try
            {
                using var device = Qcow2Image.Open(image, options ?? new Qcow2OpenOptions());
                device.Map();
                var buffer = new byte[1 << 20];
                for (long at = 0; at < device.Size; at += buffer.Length)
                    device.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, device.Size - at)));
                return null;
            }
            catch (Exception e) { return e; }
        });
        Assert.True(attempt.Wait(TimeSpan.FromMinutes(2)), $"{image}: neither read nor refused within two minutes");
        var error = attempt.Result ?? throw new Xunit.Sdk.XunitException($"{image} was read without complaint");
        Assert.False(error.Message.Contains('\n'), $"not one line: {error.Message}");
        return error;
    }

    private static void AssertOpenRefused(string image, string fragment, Qcow2OpenOptions? options = null)
    {
        var error = Refusal(image, options);
        Assert.True(error is ImageOpenException, $"expected ImageOpenException, got {error.GetType().Name}: {error.Message}");
        Assert.Contains(fragment, error.Message);
    }

    private static void AssertCorrupt(string image, string fragment)
    {
        var error = Refusal(image);
        Assert.True(error is CorruptImageException, $"expected CorruptImageException, got {error.GetType().Name}: {error.Message}");
        Assert.Contains(fragment, error.Message);
    }

    [Qcow2ToolTheory]
    [InlineData("unknown incompatible bit", "bit 5")]
    [InlineData("several unknown bits", "bit 7, bit 63")]
    [InlineData("crypt_method 1", "encrypted")]
    [InlineData("crypt_method 2", "encrypted")]
    [InlineData("external data file bit", "external data file")]
    [InlineData("version 1", "version 1 is not supported")]
    [InlineData("version 4", "version 4 is not supported")]
    [InlineData("cluster_bits 30", "cluster_bits 30 is outside")]
    [InlineData("cluster_bits 8", "cluster_bits 8 is outside")]
    [InlineData("header_length 105", "header_length 105")]
    [InlineData("refcount_order 7", "refcount_order 7")]
    [InlineData("L1 past EOF", "L1 table (0x40000000000")]
    [InlineData("L1 misaligned", "not aligned")]
    [InlineData("L1 on the header", "overlaps the header cluster")]
    [InlineData("l1_size absurd", "l1_size 2147483647 is absurd")]
    [InlineData("l1_size too small", "fewer than the 1")]
    [InlineData("size over 2^61", "over 2^61")]
    [InlineData("size needs a huge L1", "L1 entries; at most")]
    [InlineData("L1 overlaps refcount table", "overlaps the refcount table")]
    [InlineData("refcount table past EOF", "refcount table (0x")]
    [InlineData("refcount table absurd", "refcount_table_clusters 4000000000")]
    [InlineData("snapshot count absurd", "1000000 snapshots")]
    [InlineData("snapshot table past EOF", "snapshot table runs past the end")]
    [InlineData("extension past the header area", "past the end of the header area")]
    [InlineData("compression type unknown", "compression type 7 is unknown")]
    [InlineData("compression type without its bit", "without the compression type feature bit")]
    [InlineData("backing name too long", "backing file name is 5000 bytes")]
    [InlineData("backing name outside the first cluster", "not inside the first cluster")]
    [InlineData("truncated header", "too short")]
    public void Refuses_hostile_headers(string hostile, string fragment)
    {
        using var dir = new TempDir();
        string image = MakeValid(dir);
        var h = HeaderOf(image);
        switch (hostile)
        {
            case "unknown incompatible bit": PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, 1UL << 5); break;
            case "several unknown bits": PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, 1UL << 7 | 1UL << 63 | 1); break;
            case "crypt_method 1": PatchU32(image, Qcow2Header.CryptMethodOffset, 1); break;
            case "crypt_method 2": PatchU32(image, Qcow2Header.CryptMethodOffset, 2); break;
            case "external data file bit": PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, (ulong)Qcow2IncompatibleFeatures.ExternalDataFile); break;
            case "version 1": PatchU32(image, Qcow2Header.VersionOffset, 1); break;
            case "version 4": PatchU32(image, Qcow2Header.VersionOffset, 4); break;
            case "cluster_bits 30": PatchU32(image, Qcow2Header.ClusterBitsOffset, 30); break;
            case "cluster_bits 8": PatchU32(image, Qcow2Header.ClusterBitsOffset, 8); break;
            case "header_length 105": PatchU32(image, Qcow2Header.HeaderLengthOffset, 105); break;
            case "refcount_order 7": PatchU32(image, Qcow2Header.RefcountOrderOffset, 7); break;
            case "L1 past EOF": PatchU64(image, Qcow2Header.L1TableOffsetOffset, 1UL << 42); break;
            case "L1 misaligned": PatchU64(image, Qcow2Header.L1TableOffsetOffset, h.L1TableOffset + 512); break;
            case "L1 on the header": PatchU64(image, Qcow2Header.L1TableOffsetOffset, 0); break;
            case "l1_size absurd": PatchU32(image, Qcow2Header.L1SizeOffset, int.MaxValue); break;
            case "l1_size too small": PatchU32(image, Qcow2Header.L1SizeOffset, 0); break;
            case "size over 2^61": PatchU64(image, Qcow2Header.SizeOffset, 1UL << 62); break;
            case "size needs a huge L1": PatchU64(image, Qcow2Header.SizeOffset, 1UL << 60); break;
            case "L1 overlaps refcount table": PatchU64(image, Qcow2Header.L1TableOffsetOffset, h.RefcountTableOffset); break;
            case "refcount table past EOF": PatchU64(image, Qcow2Header.RefcountTableOffsetOffset, 1UL << 40); break;
            case "refcount table absurd": PatchU32(image, Qcow2Header.RefcountTableClustersOffset, 4_000_000_000); break;
            case "snapshot count absurd": PatchU32(image, Qcow2Header.SnapshotCountOffset, 1_000_000); break;
            case "snapshot table past EOF":
                PatchU32(image, Qcow2Header.SnapshotCountOffset, 3);
                PatchU64(image, Qcow2Header.SnapshotsOffsetOffset, (ulong)new FileInfo(image).Length / 65536 * 65536);
                break;
            case "extension past the header area": PatchU32(image, h.HeaderLength + 4, 0xFFFF_FFF0); break;
            case "compression type unknown":
                PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, (ulong)Qcow2IncompatibleFeatures.CompressionType);
                Patch(image, Qcow2Header.CompressionTypeOffset, [7]);
                break;
            case "compression type without its bit": Patch(image, Qcow2Header.CompressionTypeOffset, [1]); break;
            case "backing name too long":
                PatchU64(image, Qcow2Header.BackingFileOffsetOffset, 512);
                PatchU32(image, Qcow2Header.BackingFileSizeOffset, 5000);
                break;
            case "backing name outside the first cluster":
                PatchU64(image, Qcow2Header.BackingFileOffsetOffset, 65536 - 10);
                PatchU32(image, Qcow2Header.BackingFileSizeOffset, 20);
                break;
            case "truncated header":
                using (var f = new FileStream(image, FileMode.Open)) f.SetLength(40);
                break;
            default: throw new ArgumentException(hostile);
        }
        AssertOpenRefused(image, fragment);
    }

    [Qcow2ToolFact]
    public void An_unknown_incompatible_bit_is_named_from_the_feature_name_table()
    {
        using var dir = new TempDir();
        string image = MakeValid(dir);
        var bytes = File.ReadAllBytes(image);
        // qemu-img writes names for the bits it knows; relabel the "extended L2 entries" entry as bit 9 and set bit 9.
        int name = bytes.AsSpan(0, 65536).IndexOf("extended L2 entries"u8);
        Assert.True(name > 0);
        Assert.Equal(0, bytes[name - 2]);   // an incompatible feature
        Patch(image, name - 1, [9]);
        PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, 1UL << 9);
        AssertOpenRefused(image, "bit 9 ('extended L2 entries')");
    }

    [Qcow2ToolFact]
    public void Extended_l2_needs_16k_clusters()
    {
        using var dir = new TempDir();
        string image = MakeValid(dir, options: "cluster_size=4096");
        PatchU64(image, Qcow2Header.IncompatibleFeaturesOffset, (ulong)Qcow2IncompatibleFeatures.ExtendedL2);
        AssertOpenRefused(image, "extended L2 entries need clusters of at least 16 KiB");
    }

    [Qcow2ToolFact]
    public void Encrypted_and_external_data_images_are_refused()
    {
        using var dir = new TempDir();
        // The header field qemu-img sets for a LUKS image, on an otherwise valid file.
        string marked = MakeValid(dir, "marked-luks.qcow2");
        PatchU32(marked, Qcow2Header.CryptMethodOffset, (uint)Qcow2CryptMethod.Luks);
        AssertOpenRefused(marked, "encrypted");
        string external = dir.File("external.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-o", $"data_file={dir.File("external.raw")}", external, "1M");
        AssertOpenRefused(external, "external data file");
    }

    [Qcow2ToolFact]
    public void A_real_luks_image_from_qemu_img_is_refused()
    {
        using var dir = new TempDir();
        string luks = dir.File("luks.qcow2");
        string[] create = ["create", "-q", "--object", "secret,id=sec0,data=123456", "-f", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0", luks, "1M"];
        var made = CommandRunner.Run("qemu-img", create);
        // qemu-img times its PBKDF with the thread's CPU clock; where that clock does not advance (some VMs) it
        // cannot create LUKS images at all ("Unable to get accurate CPU usage"). The header test above still covers the refusal.
        if (made.ExitCode != 0 && made.ToString().Contains("Unable to get accurate CPU usage"))
            return;
        Assert.True(made.ExitCode == 0, $"qemu-img {string.Join(' ', create)}: {made}");
        AssertOpenRefused(luks, "encrypted");
    }

    [Qcow2ToolTheory]
    [InlineData("L1 entry past EOF", "past the end of the file")]
    [InlineData("L1 entry misaligned", "misaligned offset")]
    public void Refuses_broken_l1_entries(string hostile, string fragment)
    {
        using var dir = new TempDir();
        string image = MakeValid(dir);
        long l1 = (long)HeaderOf(image).L1TableOffset;
        ulong l2 = U64At(image, l1) & Qcow2L1Entry.OffsetMask;
        PatchU64(image, l1, hostile switch
        {
            "L1 entry past EOF" => (1UL << 40) | Qcow2L1Entry.CopiedFlag,
            _ => (l2 + 512) | Qcow2L1Entry.CopiedFlag,
        });
        AssertCorrupt(image, fragment);
    }

    [Qcow2ToolTheory]
    [InlineData("past EOF", "past the end of the file")]
    [InlineData("misaligned", "misaligned cluster offset")]
    public void Refuses_broken_l2_entries_when_read(string hostile, string fragment)
    {
        using var dir = new TempDir();
        string image = MakeValid(dir);
        long l2 = FirstL2Table(image);
        ulong entry = U64At(image, l2 + 8);   // guest cluster 1, written
        PatchU64(image, l2 + 8, hostile == "past EOF" ? (1UL << 40) | Qcow2L2Entry.CopiedFlag : entry + 512);
        using (var device = Qcow2Image.Open(image, new Qcow2OpenOptions()))   // the open is fine: L2 tables are read on demand
            device.Read(0, new byte[65536]);   // cluster 0 is still good
        AssertCorrupt(image, fragment);
        Assert.Contains("guest offset 0x10000", Refusal(image).Message);
    }

    [Qcow2ToolFact]
    public void Refuses_a_zero_cluster_in_a_version_2_image()
    {
        using var dir = new TempDir();
        string image = MakeValid(dir, options: "cluster_size=65536,compat=0.10");
        long l2 = FirstL2Table(image);
        PatchU64(image, l2, U64At(image, l2) | Qcow2L2Entry.ZeroFlag);
        AssertCorrupt(image, "version 2");
    }

    [Qcow2ToolTheory]
    [InlineData("both bits", "both allocated and zero")]
    [InlineData("allocated without host", "no host cluster")]
    public void Refuses_broken_subcluster_bitmaps(string hostile, string fragment)
    {
        using var dir = new TempDir();
        string image = MakeValid(dir, options: "cluster_size=65536,extended_l2=on");
        long l2 = FirstL2Table(image);
        // Guest cluster 3 (192K..256K) was written whole: allocated, no zero bits.
        if (hostile == "both bits") PatchU64(image, l2 + 3 * 16 + 8, 0x0000_0001_FFFF_FFFFUL);
        else PatchU64(image, l2 + 5 * 16, 0);   // cluster 5 (unwritten): no host offset ...
        if (hostile != "both bits") PatchU64(image, l2 + 5 * 16 + 8, 1);   // ... yet subcluster 0 allocated
        AssertCorrupt(image, fragment);
    }

    [Qcow2ToolTheory]
    [InlineData("zlib", "length past EOF", "runs past the end of the file")]
    [InlineData("zlib", "garbage", "")]
    [InlineData("zstd", "garbage", "")]
    [InlineData("zlib", "too short", "inflates to")]
    [InlineData("zstd", "too short", "")]
    [InlineData("zlib", "on the header", "overlaps the header cluster")]
    public void Refuses_broken_compressed_clusters(string compression, string hostile, string fragment)
    {
        using var dir = new TempDir();
        string image = MakeValid(dir, options: "cluster_size=65536" + (compression == "zstd" ? ",compression_type=zstd" : ""), compressed: true);
        long l2 = FirstL2Table(image);
        int x = Qcow2L2Entry.CompressedSectorShift(16);
        // The compressed cluster with the most sectors: cutting it to one sector really cuts its data.
        int index = Enumerable.Range(0, 64).Select(i => (i, e: new Qcow2L2Entry(U64At(image, l2 + 8L * i))))
            .Where(p => p.e.IsCompressed).MaxBy(p => p.e.Decode(16, false).CompressedSectors).i;
        var m = new Qcow2L2Entry(U64At(image, l2 + 8L * index)).Decode(16, false);
        Assert.True(m.CompressedSectors >= 3, $"the fixture's largest compressed cluster has {m.CompressedSectors} sectors");
        long fileLength = new FileInfo(image).Length;
        switch (hostile)
        {
            case "length past EOF":
                PatchU64(image, l2 + 8L * index, Qcow2L2Entry.Compressed((ulong)fileLength - 100, 1u << (62 - x), 16).Raw);
                break;
            case "garbage":
                Patch(image, (long)m.HostOffset, Enumerable.Repeat((byte)0xFF, 64).ToArray());
                break;
            case "too short":
                PatchU64(image, l2 + 8L * index, Qcow2L2Entry.Compressed(m.HostOffset, 1, 16).Raw);
                break;
            case "on the header":
                PatchU64(image, l2 + 8L * index, Qcow2L2Entry.Compressed(1024, 2, 16).Raw);
                break;
        }
        var error = Refusal(image);
        Assert.True(error is CorruptImageException, $"expected CorruptImageException, got {error.GetType().Name}: {error.Message}");
        Assert.Contains("compressed cluster", error.Message);
        Assert.Contains(fragment, error.Message);
    }

    [Qcow2ToolFact]
    public void A_truncated_file_is_corrupt_not_a_crash()
    {
        using var dir = new TempDir();
        string image = MakeValid(dir);
        long length = new FileInfo(image).Length;
        using (var f = new FileStream(image, FileMode.Open)) f.SetLength(length - 70_000);   // into the last data cluster
        var error = Refusal(image);
        Assert.True(error is CorruptImageException or ImageOpenException, $"{error.GetType().Name}: {error.Message}");
    }

    [Qcow2ToolTheory]
    [InlineData("../x.raw", "leads outside")]
    [InlineData("/etc/passwd", "is an absolute path")]
    [InlineData("sub/../../x.raw", "leads outside")]
    public void Backing_names_that_leave_the_folder_are_refused_unless_allowed(string backing, string fragment)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("images"));
        File.WriteAllBytes(dir.File("x.raw"), Enumerable.Repeat((byte)0x42, 1 << 20).ToArray());
        string image = Path.Combine(dir.Path, "images", "top.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", image, "1M");
        AssertOpenRefused(image, fragment);
        var error = Assert.Throws<ImageOpenException>(() => BaseImage.Open(image, depth: 0));
        Assert.Contains(fragment, error.Message);
        // A cowdisk overlay on it is refused the same way (its base opens through BaseImage).
        Assert.Throws<ImageOpenException>(() => CowImage.Create(dir.File("images/overlay.img"), new ImageCreateOptions { BackingPath = "top.qcow2" }));
        using var allowed = Qcow2Image.Open(image, new Qcow2OpenOptions { AllowAnyBackingPath = true });
        var first = new byte[512];
        allowed.Read(0, first);
        if (backing == "/etc/passwd") Assert.Equal(File.ReadAllBytes("/etc/passwd").Take(512).Concat(new byte[Math.Max(0, 512 - (int)new FileInfo("/etc/passwd").Length)]), first);
        else Assert.All(first, b => Assert.Equal(0x42, b));
    }

    [Qcow2ToolFact]
    public void A_backing_symlink_out_of_the_folder_is_refused_one_inside_is_followed()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("images"));
        File.WriteAllBytes(dir.File("secret.raw"), new byte[1 << 20]);
        File.WriteAllBytes(dir.File("images/base.raw"), Enumerable.Repeat((byte)0x24, 1 << 20).ToArray());
        File.CreateSymbolicLink(dir.File("images/escape.raw"), dir.File("secret.raw"));
        File.CreateSymbolicLink(dir.File("images/alias.raw"), "base.raw");
        Directory.CreateSymbolicLink(dir.File("images/up"), dir.Path);
        string outward = dir.File("images/out.qcow2"), viaFolder = dir.File("images/folder.qcow2"), inward = dir.File("images/in.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "escape.raw", "-F", "raw", outward, "1M");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "up/secret.raw", "-F", "raw", viaFolder, "1M");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "alias.raw", "-F", "raw", inward, "1M");
        AssertOpenRefused(outward, "is a symlink to");
        AssertOpenRefused(viaFolder, "is a symlink to");
        using var ok = Qcow2Image.Open(inward, new Qcow2OpenOptions());
        var b = new byte[4];
        ok.Read(1000, b);
        Assert.Equal(new byte[] { 0x24, 0x24, 0x24, 0x24 }, b);
    }

    [Qcow2ToolFact]
    public void A_backing_loop_is_named()
    {
        using var dir = new TempDir();
        string a = dir.File("a.qcow2"), b = dir.File("b.qcow2"), self = dir.File("self.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", a, "1M");
        Qemu.Img("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b);
        Qemu.Img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a);
        AssertOpenRefused(a, $"backing chain loops: {a} -> {b} -> {a}");
        Assert.Contains("loops", Assert.Throws<ImageOpenException>(() => BaseImage.Open(b, depth: 0)).Message);
        Assert.Contains("loops", Assert.Throws<ImageOpenException>(() => CowImage.Create(dir.File("o.img"), new ImageCreateOptions { BackingPath = "a.qcow2" })).Message);
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "self.qcow2", "-F", "qcow2", self, "1M");
        AssertOpenRefused(self, "loops");
    }

    [Qcow2ToolFact]
    public void A_chain_deeper_than_the_limit_is_refused()
    {
        using var dir = new TempDir();
        Qemu.Img("create", "-q", "-f", "qcow2", dir.File("l0.qcow2"), "1M");
        for (int i = 1; i <= BaseImage.MaxChainDepth + 1; i++)
            Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", $"l{i - 1}.qcow2", "-F", "qcow2", dir.File($"l{i}.qcow2"), "1M");
        AssertOpenRefused(dir.File($"l{BaseImage.MaxChainDepth + 1}.qcow2"), $"deeper than {BaseImage.MaxChainDepth}");
        using var deepest = Qcow2Image.Open(dir.File($"l{BaseImage.MaxChainDepth}.qcow2"), new Qcow2OpenOptions());
        deepest.Read(0, new byte[4096]);
    }

    [Qcow2ToolTheory]
    [InlineData("vmdk", "format 'vmdk', which is not supported")]
    [InlineData("qcow2", "declared qcow2 but is not a qcow2 image")]
    public void A_backing_format_we_cannot_honour_is_refused(string format, string fragment)
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("base.img"), new byte[1 << 20]);
        string image = dir.File("top.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "base.img", "-F", format, image, "1M");
        AssertOpenRefused(image, fragment);
    }

    [Qcow2ToolFact]
    public void A_missing_backing_file_is_named()
    {
        using var dir = new TempDir();
        string image = dir.File("top.qcow2");
        Qemu.Img("create", "-q", "-f", "qcow2", "-u", "-b", "gone.raw", "-F", "raw", image, "1M");
        AssertOpenRefused(image, "gone.raw");
    }

    /// <summary>
    /// Random bytes flipped in the metadata of valid images (header cluster, L1, refcount and L2 tables, compressed
    /// data): every open and full read either succeeds or ends in a BlockDeviceException with one line.
    /// </summary>
    [Qcow2ToolFact]
    public void Random_metadata_damage_never_escapes_as_another_exception()
    {
        using var dir = new TempDir();
        var sources = new[]
        {
            MakeValid(dir, "plain.qcow2", "cluster_size=4096"),
            MakeValid(dir, "ext.qcow2", "cluster_size=16384,extended_l2=on"),
            MakeValid(dir, "zlib.qcow2", "cluster_size=4096", compressed: true),
            MakeValid(dir, "zstd.qcow2", "cluster_size=65536,compression_type=zstd", compressed: true),
        };
        Qemu.Img("snapshot", "-c", "s1", sources[0]);
        var rng = new Random(2024);
        int refused = 0, read = 0;
        for (int round = 0; round < 240; round++)
        {
            string source = sources[round % sources.Length];
            var bytes = File.ReadAllBytes(source);
            int metadataEnd = (int)Math.Min(bytes.Length, 6 * (1 << (int)HeaderOf(source).ClusterBits));
            for (int flips = rng.Next(1, 6); flips > 0; flips--)
            {
                int at = rng.Next(3) == 0 ? rng.Next(0, 112) : rng.Next(0, metadataEnd);
                bytes[at] ^= (byte)(1 << rng.Next(8));
            }
            string damaged = dir.File("damaged.qcow2");
            File.WriteAllBytes(damaged, bytes);
            var attempt = Task.Run(() =>
            {
                try
                {
                    using var device = Qcow2Image.Open(damaged, new Qcow2OpenOptions());
                    device.Map();
                    var buffer = new byte[1 << 20];
                    for (long at = 0; at < device.Size; at += buffer.Length)
                        device.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, device.Size - at)));
                    if (device.Snapshots.Count > 0)
                    {
                        using var snap = Qcow2Image.Open(damaged, new Qcow2OpenOptions { Snapshot = device.Snapshots[0].Id });
                        for (long at = 0; at < snap.Size; at += buffer.Length)
                            snap.Read(at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, snap.Size - at)));
                    }
                    return (Exception?)null;
                }
                catch (Exception e) { return e; }
            });
            Assert.True(attempt.Wait(TimeSpan.FromMinutes(2)), $"round {round}: a damaged image neither read nor refused within two minutes");
            if (attempt.Result is { } e)
            {
                Assert.True(e is BlockDeviceException, $"round {round} ({Path.GetFileName(source)}): {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
                Assert.False(e.Message.Contains('\n'), e.Message);
                refused++;
            }
            else read++;
        }
        Assert.True(refused > 20 && read > 5, $"{refused} refused, {read} read");
    }
}
