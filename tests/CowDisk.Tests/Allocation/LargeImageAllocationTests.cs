using CowDisk.Engine;
using CowDisk.Engine.Images;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Allocation;

/// <summary>
/// The allocator end to end, through an image with 4 KiB clusters: more than the 4,096 clusters its first
/// bitmap covers, freed clusters on both sides of that boundary reused by partial writes (which must fill
/// them: they hold old bytes), and the whole disk read back after a close and a reopen.
/// </summary>
public class LargeImageAllocationTests
{
    private const int Cs = 4096;
    // No growth ahead: the data file's length in clusters is what these tests count (growth: CrashImageTests).
    private static readonly EngineSettings Patient = new() { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20, GrowStepMiB = 0 };

    [Fact]
    public void More_than_4096_clusters_are_allocated_freed_reused_and_read_back_after_a_reopen()
    {
        using var dir = new TempDir();
        string path = dir.File("big.img");
        const long size = 48L << 20;   // 12,288 blocks
        var model = new byte[size];

        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = size, ClusterSize = Cs }, Patient))
        {
            for (long b = 0; b < 4544; b += 64) Write(image, model, b * Cs, ModelRunner.Pattern(64 * Cs, (byte)(b % 250 + 1)));
            for (int i = 0; i < 200; i++) Write(image, model, (8000L + 2 * i) * Cs, ModelRunner.Pattern(Cs, (byte)(i % 250 + 2)));
            Write(image, model, 9000L * Cs + 100, ModelRunner.Pattern(512, 7));   // a fresh cluster past 4,096: zeros around it
            var written = image.CheckInvariants();
            Assert.Equal((4745L, 0L, 4745L), (written.MappedClusters, written.FreeClusters, written.DataFileClusters));

            // Free 100 clusters below the first bitmap's end and 100 above it; durable at the flush, so reusable.
            Discard(image, model, 100L * Cs, 100 * Cs);
            Discard(image, model, 4200L * Cs, 100 * Cs);
            image.Flush();
            Assert.Equal(200L, image.CheckInvariants().FreeClusters);

            // Partial writes to new blocks take those clusters (the file does not grow); each must read zeros
            // around its bytes, not what the cluster held before.
            for (int i = 0; i < 200; i++) Write(image, model, (10_000L + i) * Cs + 1000, ModelRunner.Pattern(300, (byte)(i % 200 + 50)));
            var reused = image.CheckInvariants();
            Assert.Equal((4745L, 0L, written.DataFileClusters), (reused.MappedClusters, reused.FreeClusters, reused.DataFileClusters));
            AssertContents(image, model);
        }

        using (var image = CowImage.Open(path, new ImageOpenOptions { Settings = Patient }))
        {
            Assert.False(image.WasUnclean);
            AssertContents(image, model);
            Assert.Equal(4745L, image.CheckInvariants().MappedClusters);
            // The allocator rebuilt at open from more than 4,096 mapped clusters hands out only new ones.
            Write(image, model, 11_000L * Cs, ModelRunner.Pattern(300 * Cs, 9));
            Discard(image, model, 4400L * Cs, 8 * Cs);
            image.Flush();
            Write(image, model, 12_000L * Cs + 5, ModelRunner.Pattern(8 * Cs - 10, 11));
            var after = image.CheckInvariants();
            Assert.Equal((5045L, 0L, 5045L), (after.MappedClusters, after.FreeClusters, after.DataFileClusters));
            AssertContents(image, model);
        }

        using var readOnly = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        AssertContents(readOnly, model);
    }

    private static void Write(CowImage image, byte[] model, long offset, byte[] data)
    {
        image.Write(offset, data);
        data.CopyTo(model, offset);
    }

    private static void Discard(CowImage image, byte[] model, long offset, int length)
    {
        image.Discard(offset, length);
        Array.Clear(model, (int)offset, length);
    }

    private static void AssertContents(CowImage image, byte[] model)
    {
        var buffer = new byte[1 << 20];
        for (long offset = 0; offset < model.Length; offset += buffer.Length)
        {
            image.Read(offset, buffer);
            var expected = model.AsSpan((int)offset, buffer.Length);
            int diff = buffer.AsSpan().CommonPrefixLength(expected);
            if (diff < buffer.Length)
                Assert.Fail($"byte {offset + diff} (block {(offset + diff) / Cs}) reads {buffer[diff]}, expected {expected[diff]}");
        }
    }
}
