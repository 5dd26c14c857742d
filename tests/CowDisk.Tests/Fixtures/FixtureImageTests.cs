using System.Security.Cryptography;
using System.Text;
using CowDisk.Engine;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Format.Image;
using Xunit;

namespace CowDisk.Tests.Fixtures;

/// <summary>
/// Format compatibility: the committed v1 images under images/ (made by images/make-fixtures.sh, described in
/// images/README.md) must keep opening and reading exactly as documented. A change that can no longer read
/// them fails here. The fixtures are copied to a temporary folder first, so the committed files never change.
/// </summary>
public sealed class FixtureImageTests : IDisposable
{
    private const int K = 1024;

    private static readonly string[] FixtureFiles =
    [
        "v1-base.img", "v1-base.img.meta.db",
        "v1-overlay.img", "v1-overlay.img.meta.db",
        "v1-raw-overlay.img", "v1-raw-overlay.img.meta.db",
        "raw-base.bin",
        "v3-snapshots.img", "v3-snapshots.img.meta.db", "v3-snapshots.img.meta.log",
    ];

    private readonly string _folder;

    public FixtureImageTests()
    {
        string source = FixtureFolder();
        _folder = Directory.CreateTempSubdirectory("cowdisk-fixtures-").FullName;
        foreach (string name in FixtureFiles)
        {
            string from = Path.Combine(source, name);
            Assert.True(File.Exists(from), $"fixture {from} is missing (run images/make-fixtures.sh?)");
            File.Copy(from, Path.Combine(_folder, name));
        }
        // A committed LiteDB log would mean a fixture was not closed cleanly.
        Assert.Empty(Directory.GetFiles(source, "*-log.db"));
    }

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    private string Copy(string name) => Path.Combine(_folder, name);

    private static CowImage OpenReadOnly(string path, bool mappingCache = true) =>
        CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Settings = new EngineSettings { MappingCache = mappingCache } });

    // ---- what the images must read as (images/README.md) ------------------------------------------------

    /// <summary>T(n): the first n bytes of `seq -w 0 99999`, i.e. "00000\n00001\n...".</summary>
    private static byte[] T(int n)
    {
        var text = new StringBuilder(n + 6);
        for (int i = 0; text.Length < n; i++) text.Append(i.ToString("D5")).Append('\n');
        return Encoding.ASCII.GetBytes(text.ToString(0, n));
    }

    private static void Fill(byte[] m, long offset, int length, byte value) => m.AsSpan((int)offset, length).Fill(value);
    private static void Put(byte[] m, long offset, byte[] data) => data.CopyTo(m.AsSpan((int)offset));

    /// <summary>v1-base.img: steps B1..B9 of make-fixtures.sh applied to 1 MiB of zeros.</summary>
    private static byte[] ExpectedBase()
    {
        var m = new byte[1 * K * K];
        Fill(m, 0, 8 * K, 0x11);            // B1
        Put(m, 12 * K, T(8 * K));           // B2
        Fill(m, 20000, 5000, 0x33);         // B3
        Fill(m, 64 * K, 16 * K, 0x44);      // B4
        Fill(m, 68 * K, 8 * K, 0);          // B5 discard
        Fill(m, 1020 * K, 4 * K, 0x55);     // B6
        Fill(m, 1000000, 100, 0x66);        // B7
        Fill(m, 128 * K, 8 * K, 0x77);      // B8
        Fill(m, 130 * K, 6 * K, 0);         // B9 zero
        return m;
    }

    /// <summary>v1-overlay.img: the base's contents with steps O1..O6 on top.</summary>
    private static byte[] ExpectedOverlay()
    {
        var m = ExpectedBase();
        Fill(m, 4196, 100, 0xaa);           // O1
        Fill(m, 24 * K, 8 * K, 0xbb);       // O2
        Fill(m, 64 * K, 8 * K, 0);          // O3 discard
        Fill(m, 1000000, 24000, 0);         // O4 zero
        Fill(m, 30000, 10, 0xcc);           // O5
        Fill(m, 16000, 2000, 0xdd);         // O6
        return m;
    }

    private static byte[] ExpectedRawBase()
    {
        var m = new byte[16 * K];
        Put(m, 2048, T(8 * K));
        Fill(m, 2048 + 8 * K, 6 * K, (byte)'Z');
        return m;
    }

    /// <summary>v1-raw-overlay.img: 32 KiB over the 16 KiB raw base (zeros past its end), R1..R3 on top.</summary>
    private static byte[] ExpectedRawOverlay()
    {
        var m = new byte[32 * K];
        Put(m, 0, ExpectedRawBase());
        Fill(m, 4000, 200, 0xee);           // R1
        Fill(m, 14000, 5000, 0xef);         // R2
        Fill(m, 8 * K, 4 * K, 0);           // R3 discard
        return m;
    }

    // The ranges images/README.md lists, checked one by one (the whole-disk comparison covers the rest).
    private static readonly (string Image, long Offset, int Length, byte Value)[] DocumentedRanges =
    [
        ("v1-base.img", 0, 8192, 0x11),
        ("v1-base.img", 8192, 4096, 0x00),
        ("v1-base.img", 20000, 5000, 0x33),
        ("v1-base.img", 25000, 3672, 0x00),
        ("v1-base.img", 65536, 4096, 0x44),
        ("v1-base.img", 69632, 8192, 0x00),
        ("v1-base.img", 77824, 4096, 0x44),
        ("v1-base.img", 131072, 2048, 0x77),
        ("v1-base.img", 133120, 6144, 0x00),
        ("v1-base.img", 999424, 576, 0x00),
        ("v1-base.img", 1000000, 100, 0x66),
        ("v1-base.img", 1000100, 3420, 0x00),
        ("v1-base.img", 1044480, 4096, 0x55),
        ("v1-overlay.img", 0, 4196, 0x11),
        ("v1-overlay.img", 4196, 100, 0xaa),
        ("v1-overlay.img", 4296, 3896, 0x11),
        ("v1-overlay.img", 16000, 2000, 0xdd),
        ("v1-overlay.img", 24576, 5424, 0xbb),
        ("v1-overlay.img", 30000, 10, 0xcc),
        ("v1-overlay.img", 30010, 2758, 0xbb),
        ("v1-overlay.img", 65536, 12288, 0x00),
        ("v1-overlay.img", 77824, 4096, 0x44),
        ("v1-overlay.img", 999424, 576, 0x00),
        ("v1-overlay.img", 1000000, 24000, 0x00),
        ("v1-overlay.img", 1044480, 4096, 0x55),
        ("v1-raw-overlay.img", 0, 2048, 0x00),
        ("v1-raw-overlay.img", 4000, 200, 0xee),
        ("v1-raw-overlay.img", 8192, 4096, 0x00),
        ("v1-raw-overlay.img", 12288, 1712, (byte)'Z'),
        ("v1-raw-overlay.img", 14000, 5000, 0xef),
        ("v1-raw-overlay.img", 19000, 13768, 0x00),
    ];

    // ---- tests ---------------------------------------------------------------------------------------------

    [Theory]
    [InlineData("v1-base.img", true)]
    [InlineData("v1-base.img", false)]
    [InlineData("v1-overlay.img", true)]
    [InlineData("v1-overlay.img", false)]
    [InlineData("v1-raw-overlay.img", true)]
    [InlineData("v1-raw-overlay.img", false)]
    public void Every_byte_reads_as_documented(string name, bool mappingCache)
    {
        var expected = name switch
        {
            "v1-base.img" => ExpectedBase(),
            "v1-overlay.img" => ExpectedOverlay(),
            _ => ExpectedRawOverlay(),
        };
        using var image = OpenReadOnly(Copy(name), mappingCache);
        Assert.Equal(expected.LongLength, image.Size);
        var actual = new byte[expected.Length];
        image.Read(0, actual);
        AssertSameBytes(expected, actual, 0, name);

        // Unaligned reads that start and end inside blocks take other paths through the target.
        foreach (var (offset, length) in new (long, int)[] { (4000, 300), (16001, 1999), (20479, 2), (4095, 8194) })
        {
            if (offset + length > expected.Length) continue;
            var part = new byte[length];
            image.Read(offset, part);
            AssertSameBytes(expected.AsSpan((int)offset, length).ToArray(), part, offset, name);
        }
    }

    [Fact]
    public void The_documented_ranges_hold()
    {
        foreach (var group in DocumentedRanges.GroupBy(r => r.Image))
        {
            using var image = OpenReadOnly(Copy(group.Key));
            foreach (var (_, offset, length, value) in group)
            {
                var buffer = new byte[length];
                image.Read(offset, buffer);
                int bad = buffer.AsSpan().IndexOfAnyExcept(value);
                Assert.True(bad < 0, $"{group.Key}: byte {offset + bad} is 0x{buffer[Math.Max(bad, 0)]:x2}, documented as 0x{value:x2} ({offset}+{length})");
            }
        }
        using (var image = OpenReadOnly(Copy("v1-base.img")))
        {
            var text = new byte[7712];
            image.Read(12288, text);
            Assert.Equal(T(7712), text);               // B2, up to where B3 overwrote it
        }
        using (var image = OpenReadOnly(Copy("v1-raw-overlay.img")))
        {
            var text = new byte[4000 - 2048];
            image.Read(2048, text);
            Assert.Equal(T(4000 - 2048), text);         // the raw base's text, read through
        }
    }

    /// <summary>
    /// A version-1 image opened for writing becomes version 2 before anything goes into the framed log (so a
    /// build that only knows 1 refuses it), keeps every byte, and opens again.
    /// </summary>
    [Fact]
    public void A_writable_open_upgrades_a_v1_image_to_the_current_version_and_keeps_its_data()
    {
        string path = Copy("v1-overlay.img");
        var before = new byte[1 << 20];
        using (var image = OpenReadOnly(path)) image.Read(0, before);
        Assert.Equal(1u, CowDisk.Format.Image.ImageHeader.Read(File.ReadAllBytes(path)).Version);
        using (var image = CowImage.Open(path, new ImageOpenOptions())) { }
        Assert.Equal(CowDisk.Format.Image.ImageHeader.CurrentVersion, CowDisk.Format.Image.ImageHeader.Read(File.ReadAllBytes(path)).Version);
        var after = new byte[1 << 20];
        using (var image = OpenReadOnly(path))
        {
            image.Read(0, after);
            image.CheckInvariants();
        }
        AssertSameBytes(before, after, 0, "v1-overlay.img after its upgrade");
        Assert.Equal(1u, CowDisk.Format.Image.ImageHeader.Read(File.ReadAllBytes(Copy("v1-base.img"))).Version);   // its base is never written
    }

    [Fact]
    public void Headers_are_v1_and_agree_with_the_metadata()
    {
        foreach (var (name, clusterSize, size) in new[] { ("v1-base.img", 4096, 1L << 20), ("v1-overlay.img", 8192, 1L << 20), ("v1-raw-overlay.img", 4096, 32L * K) })
        {
            byte[] head = File.ReadAllBytes(Copy(name)).AsSpan(0, ImageHeader.Size).ToArray();
            Assert.Equal("CowDisk\0"u8.ToArray(), head[..8]);
            var header = ImageHeader.Read(head);
            Assert.Equal(1u, header.Version);
            Assert.Equal(clusterSize, header.ClusterSize);
            Assert.Equal(size, header.VirtualSize);

            using var image = OpenReadOnly(Copy(name));
            Assert.Equal(header.ImageId, image.ImageId);
            Assert.Equal(clusterSize, image.Geometry.ClusterSize);
            Assert.Equal(size, image.Size);
            Assert.False(image.WasUnclean, $"{name} was committed without a clean close");
            Assert.True(image.ReadOnly);
        }
    }

    [Fact]
    public void The_backing_chain_is_as_documented()
    {
        using (var overlay = OpenReadOnly(Copy("v1-overlay.img")))
        {
            Assert.Equal("v1-base.img", overlay.BackingFile);   // stored relative to the overlay's folder
            var baseImage = Assert.IsType<CowImage>(overlay.Base);
            Assert.Equal(Copy("v1-base.img"), baseImage.Files.DataPath);
            Assert.True(baseImage.ReadOnly);
            Assert.Null(baseImage.BackingFile);
            Assert.Null(baseImage.Base);
            var info = overlay.GetInfo();
            Assert.Equal("cowdisk", info.Format);
            Assert.Equal("cowdisk", info.BackingFormat);
            Assert.Equal(Copy("v1-base.img"), info.Backing!.Path);
            Assert.Null(info.Backing.Backing);
        }
        using (var rawOverlay = OpenReadOnly(Copy("v1-raw-overlay.img")))
        {
            Assert.Equal("raw-base.bin", rawOverlay.BackingFile);
            var raw = Assert.IsType<RawFileDevice>(rawOverlay.Base);
            Assert.Equal(Copy("raw-base.bin"), raw.Path);
            Assert.Equal(16L * K, raw.Size);
            Assert.Equal("raw", rawOverlay.GetInfo().BackingFormat);
            var bytes = new byte[raw.Size];
            raw.Read(0, bytes);
            Assert.Equal(ExpectedRawBase(), bytes);
        }
        using (var baseImage = OpenReadOnly(Copy("v1-base.img")))
        {
            Assert.Null(baseImage.BackingFile);
            Assert.Null(baseImage.Base);
            Assert.Null(baseImage.GetInfo().BackingFormat);
        }
    }

    [Theory]
    // image, allocated bytes (data extents), mapped clusters, free clusters below the data file's end
    [InlineData("v1-base.img", 11 * 4096, 11, 1)]
    [InlineData("v1-overlay.img", 5 * 8192, 5, 0)]
    [InlineData("v1-raw-overlay.img", 4 * 4096, 4, 0)]
    public void Allocation_and_invariants_are_as_documented(string name, long allocatedBytes, long mappedClusters, long freeClusters)
    {
        using var image = OpenReadOnly(Copy(name));
        Assert.Equal(allocatedBytes, image.AllocatedBytes());
        var report = image.CheckInvariants();
        Assert.Equal(mappedClusters, report.MappedClusters);
        Assert.Equal(0, report.PendingFreeClusters);
        Assert.Equal(freeClusters, report.FreeClusters);
        if (image.Base is CowImage baseImage) baseImage.CheckInvariants();
    }

    [Fact]
    public void Opening_read_only_changes_no_file()
    {
        var before = FixtureFiles.ToDictionary(f => f, f => Sha(Copy(f)));
        using (var image = OpenReadOnly(Copy("v1-overlay.img")))
            image.Read(0, new byte[image.Size]);
        using (var image = OpenReadOnly(Copy("v1-raw-overlay.img")))
            image.Read(0, new byte[image.Size]);
        foreach (var f in FixtureFiles) Assert.True(before[f] == Sha(Copy(f)), $"{f} changed on a read-only open");
        Assert.Empty(Directory.GetFiles(_folder, "*-log.db"));
    }

    [Fact]
    public void A_copy_still_opens_for_writing_and_keeps_what_it_had()
    {
        string path = Copy("v1-overlay.img");
        var expected = ExpectedOverlay();
        using (var image = CowImage.Open(path, new ImageOpenOptions()))
        {
            Assert.False(image.ReadOnly);
            var data = new byte[3000];
            Array.Fill(data, (byte)0x5e);
            image.Write(500000, data);             // a new extent over the base
            image.Write(4196, data.AsSpan(0, 50)); // in place in an existing one
            data.CopyTo(expected, 500000);
            data.AsSpan(0, 50).CopyTo(expected.AsSpan(4196));
            image.Flush();
            image.CheckInvariants();
        }
        using (var reopened = OpenReadOnly(path))
        {
            Assert.False(reopened.WasUnclean);
            var actual = new byte[expected.Length];
            reopened.Read(0, actual);
            AssertSameBytes(expected, actual, 0, "v1-overlay.img after a write");
        }
        Assert.Equal(Sha(Path.Combine(FixtureFolder(), "v1-base.img")), Sha(Copy("v1-base.img")));   // the base is never written
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    private static void AssertSameBytes(byte[] expected, byte[] actual, long at, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        int diff = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(diff == expected.Length,
            $"{what}: byte {at + diff} reads 0x{(diff < actual.Length ? actual[diff] : 0):x2}, expected 0x{(diff < expected.Length ? expected[diff] : 0):x2}");
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>The repository's images/ folder, found upwards from the test binaries.</summary>
    private static string FixtureFolder()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "images");
            if (File.Exists(Path.Combine(candidate, "v1-base.img")) && File.Exists(Path.Combine(dir.FullName, "CowDisk.sln")))
                return candidate;
        }
        throw new InvalidOperationException($"no images/ folder with the fixtures above {AppContext.BaseDirectory}");
    }

    // ---- format 3: snapshots (v3-snapshots.img, steps S1..S8 of make-fixtures.sh) ------------------------

    private static byte[] ExpectedFirst()
    {
        var m = new byte[1 * K * K];
        Fill(m, 0, 16 * K, 0x11);           // S1
        return m;
    }

    /// <summary>'third', and the head after the revert to it.</summary>
    private static byte[] ExpectedThird()
    {
        var m = ExpectedFirst();
        Fill(m, 4 * K, 4 * K, 0x22);        // S2
        Fill(m, 8 * K, 4 * K, 0);           // S3 discard
        Fill(m, 1000000, 100, 0x33);        // S4
        Fill(m, 12 * K, 4 * K, 0x44);       // S5
        return m;                            // S7 undone by S8
    }

    [Theory]
    [InlineData(null)]
    [InlineData("first")]
    [InlineData("third")]
    public void A_format_3_image_and_its_snapshots_read_as_documented(string? snapshot)
    {
        var expected = snapshot == "first" ? ExpectedFirst() : ExpectedThird();
        using var image = CowImage.Open(Copy("v3-snapshots.img"), new ImageOpenOptions { ReadOnly = true, Snapshot = snapshot });
        var actual = new byte[expected.Length];
        image.Read(0, actual);
        AssertSameBytes(expected, actual, 0, $"v3-snapshots.img@{snapshot}");
        Assert.Equal(["first", "third"], image.ListSnapshots().Select(x => x.Name));
    }

    [Fact]
    public void A_format_3_image_checks_clean_and_keeps_working()
    {
        string path = Copy("v3-snapshots.img");
        using (var image = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }))
        {
            var report = image.Check(repair: false);
            Assert.Empty(report.Corruptions);
            // (Leaks are not asserted: the test's File.Copy does not keep holes, so the cluster S8 punched is host space again.)
            Assert.Equal(2, report.Snapshots);
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions()))
        {
            image.Write(0, new byte[4 * K]);
            image.DeleteSnapshot("first");   // frees block 1's and 3's first clusters and block 2's
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Snapshot = "third" }))
        {
            var actual = new byte[1 * K * K];
            image.Read(0, actual);
            AssertSameBytes(ExpectedThird(), actual, 0, "third after deleting first");
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }))
            Assert.Empty(image.Check(repair: false).Corruptions);
    }
}
