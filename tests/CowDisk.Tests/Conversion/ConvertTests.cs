using CowDisk.Engine.Convert;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Conversion;

/// <summary>convert between cowdisk and raw: every byte kept, holes and zeros left unallocated, bad input refused whole.</summary>
public sealed class ConvertTests
{
    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        data[0] = 1;   // never all zeros
        return data;
    }

    private static string MakeImage(TempDir dir, string name, long size, int clusterSize, out byte[] model)
    {
        string path = dir.File(name);
        model = new byte[size];
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = size, ClusterSize = clusterSize });
        foreach (var (offset, length, seed) in new[] { (0L, 5000, 1), (size / 3 + 77, (int)Math.Min(clusterSize * 3L + 11, size / 2), 2), (size - 4097, 4097, 3) })
        {
            var data = Pattern(length, seed);
            image.Write(offset, data);
            data.CopyTo(model, offset);
        }
        // A cluster of written zeros and a discarded range: both read as zeros and must not be copied as data.
        if (clusterSize * 9L <= size)
        {
            image.Write(clusterSize * 8L, new byte[clusterSize]);
            Array.Clear(model, clusterSize * 8, clusterSize);
        }
        image.Discard(size / 3 + 77 + clusterSize, clusterSize);
        Array.Clear(model, (int)(size / 3 + 77 + clusterSize), clusterSize);
        return path;
    }

    [Theory]
    [InlineData(4096, 3 * 1024 * 1024 + 4097L)]
    [InlineData(65536, 17 * 65536L)]
    [InlineData(65536, 5 * 1024 * 1024 + 511L)]
    [InlineData(2 * 1024 * 1024, 9 * 1024 * 1024 + 3L)]
    public void Cowdisk_to_raw_to_cowdisk_keeps_every_byte_and_stays_sparse(int clusterSize, long size)
    {
        using var dir = new TempDir();
        string image = MakeImage(dir, "disk.img", size, clusterSize, out var model);
        var toRaw = ImageConverter.Convert(new ImageRef(image, null), dir.File("disk.raw"), new ConvertOptions { Target = ConvertFormat.Raw });
        Assert.Equal(size, new FileInfo(dir.File("disk.raw")).Length);
        Assert.Equal(model, File.ReadAllBytes(dir.File("disk.raw")));
        Assert.True(toRaw.WrittenBytes < toRaw.DataBytes || toRaw.DataBytes <= 3L * clusterSize + 5000 + 4097 + 11,
            $"zeros were written: {toRaw.WrittenBytes} of {toRaw.DataBytes}");
        long allocated = Native.AllocatedBytes(dir.File("disk.raw"));
        Assert.True(allocated <= 8L * clusterSize + (1 << 20), $"the raw output is not sparse: {allocated} bytes allocated");

        ImageConverter.Convert(new ImageRef(dir.File("disk.raw"), null), dir.File("back.img"), new ConvertOptions { Target = ConvertFormat.CowDisk, ClusterSize = clusterSize });
        using var back = CowImage.Open(dir.File("back.img"), new ImageOpenOptions { ReadOnly = true });
        var read = new byte[size];
        back.Read(0, read);
        Assert.Equal(model, read);
        // Only clusters with data are allocated: the zero cluster and the discarded one are not.
        Assert.True(back.AllocatedBytes() <= 8L * clusterSize, $"{back.AllocatedBytes()} bytes allocated for at most 8 clusters of data");
        Assert.Empty(back.Check(repair: false).Corruptions);
    }

    [Fact]
    public void A_snapshot_converts_as_it_was_frozen()
    {
        using var dir = new TempDir();
        string path = dir.File("disk.img");
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 4 << 20 }))
        {
            image.Write(0, Pattern(1 << 20, 5));
            image.CreateSnapshot("before");
            image.Write(4096, Pattern(8192, 6));
            image.Discard(1 << 19, 1 << 19);
        }
        ImageConverter.Convert(new ImageRef(path, "before"), dir.File("before.raw"), new ConvertOptions { Target = ConvertFormat.Raw });
        var expected = new byte[4 << 20];
        Pattern(1 << 20, 5).CopyTo(expected, 0);
        Assert.Equal(expected, File.ReadAllBytes(dir.File("before.raw")));
    }

    [Fact]
    public void Bad_input_changes_nothing_and_leaves_no_partial_output()
    {
        using var dir = new TempDir();
        string image = MakeImage(dir, "disk.img", 1 << 20, 65536, out _);
        File.WriteAllText(dir.File("existing.raw"), "keep me");
        var before = Directory.GetFiles(dir.Path).Order().ToArray();
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(image, null), dir.File("existing.raw"), new ConvertOptions { Target = ConvertFormat.Raw }));
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(image, null), image, new ConvertOptions { Target = ConvertFormat.CowDisk, Force = true }));
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(image, "nosuch"), dir.File("x.raw"), new ConvertOptions { Target = ConvertFormat.Raw }));
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(dir.File("missing.img"), null), dir.File("y.raw"), new ConvertOptions { Target = ConvertFormat.Raw }));
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(image, null), dir.File("no/such/folder.raw"), new ConvertOptions { Target = ConvertFormat.Raw }));
        Assert.Equal("keep me", File.ReadAllText(dir.File("existing.raw")));
        Assert.Equal(before, Directory.GetFiles(dir.Path).Order().ToArray());

        // --force replaces it whole.
        ImageConverter.Convert(new ImageRef(image, null), dir.File("existing.raw"), new ConvertOptions { Target = ConvertFormat.Raw, Force = true });
        Assert.Equal(1 << 20, new FileInfo(dir.File("existing.raw")).Length);
    }

    [Fact]
    public void A_cancelled_conversion_leaves_no_output_and_no_staging_files()
    {
        using var dir = new TempDir();
        string image = MakeImage(dir, "disk.img", 4 << 20, 65536, out _);
        File.WriteAllText(dir.File("out.raw"), "keep me");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        foreach (var format in new[] { ConvertFormat.Raw, ConvertFormat.CowDisk, ConvertFormat.Qcow2 })
            Assert.ThrowsAny<OperationCanceledException>(() => ImageConverter.Convert(new ImageRef(image, null), dir.File("out.raw"),
                new ConvertOptions { Target = format, Force = true, Cancel = cancelled.Token }));
        Assert.Equal("keep me", File.ReadAllText(dir.File("out.raw")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".*convert-*"));
    }

    [Fact]
    public void Staging_files_of_a_killed_conversion_are_removed_by_the_next_one()
    {
        using var dir = new TempDir();
        string image = MakeImage(dir, "disk.img", 1 << 20, 65536, out _);
        // A pid that cannot be running (above pid_max), as a conversion killed with -9 leaves it.
        string abandoned = dir.File(".out.raw.convert-99999999");
        File.WriteAllText(abandoned, "partial");
        ImageConverter.Convert(new ImageRef(image, null), dir.File("out.raw"), new ConvertOptions { Target = ConvertFormat.Raw });
        Assert.False(File.Exists(abandoned));
    }

    [Fact]
    public void The_output_is_never_a_device_or_a_file_the_source_reads()
    {
        using var dir = new TempDir();
        string baseRaw = dir.File("base.raw");
        File.WriteAllBytes(baseRaw, new byte[1 << 20]);
        using (CowImage.Create(dir.File("top.img"), new ImageCreateOptions { BackingPath = "base.raw" })) { }
        var refused = Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(dir.File("top.img"), null), baseRaw,
            new ConvertOptions { Target = ConvertFormat.Raw, Force = true }));
        Assert.Contains("which the source reads", refused.Message);
        Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(dir.File("top.img"), null), "/dev/null",
            new ConvertOptions { Target = ConvertFormat.Raw, Force = true }));
        Assert.True(File.Exists("/dev/null") && !CowDisk.Engine.Native.HostFile.IsRegularFile("/dev/null"));
    }

    [Fact]
    public void A_qcow2_qemu_could_not_open_is_refused_before_anything_is_written()
    {
        using var dir = new TempDir();
        using (CowImage.Create(dir.File("huge.img"), new ImageCreateOptions { Size = 300L << 30 })) { }
        var refused = Assert.Throws<ImageOpenException>(() => ImageConverter.Convert(new ImageRef(dir.File("huge.img"), null), dir.File("h.qcow2"),
            new ConvertOptions { Target = ConvertFormat.Qcow2, ClusterSize = 512 }));
        Assert.Contains("larger --cluster-size", refused.Message);
        Assert.False(File.Exists(dir.File("h.qcow2")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".*convert-*"));
    }

    [Fact]
    public void The_cli_converts_with_one_line_errors()
    {
        using var dir = new TempDir();
        string image = MakeImage(dir, "disk.img", 2 << 20, 65536, out var model);
        var ok = CowdiskExecutable.Run("convert", image, dir.File("out.raw"), "--to", "raw", "-p");
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal("", ok.Output + ok.Error);   // piped: no summary, no progress
        Assert.Equal(model, File.ReadAllBytes(dir.File("out.raw")));
        foreach (string[] bad in new[]
        {
            new[] { "convert", image, dir.File("out.raw"), "--to", "raw" },                // exists
            ["convert", image, dir.File("x.img"), "--to", "vmdk"],
            ["convert", image, dir.File("x.img"), "--to", "raw", "--compress"],
            ["convert", image, dir.File("x.img"), "--to", "cowdisk", "--cluster-size", "3000"],
            ["convert", dir.File("nope.img"), dir.File("x.img"), "--to", "raw"],
        })
        {
            var result = CowdiskExecutable.Run(bad);
            Assert.True(result.ExitCode != 0, $"{string.Join(' ', bad)}: {result}");
            Assert.Single(result.Error.Trim().Split('\n'));
        }
        Assert.False(File.Exists(dir.File("x.img")));
        Assert.Empty(Directory.GetFiles(dir.Path, ".*convert-*"));
    }

    private static class Native
    {
        public static long AllocatedBytes(string path) => CowDisk.Engine.Native.HostFile.AllocatedBytes(path);
    }
}
