using CowDisk.Engine;
using CowDisk.Engine.Images;
using Xunit;

namespace CowDisk.Tests.Engine;

public class ExtentAndCommitTests
{
    private static readonly EngineSettings Patient = new() { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };

    [Theory]
    [InlineData(4096, 4096)]      // one block per write: the allocator's cursor keeps them consecutive
    [InlineData(4096, 1 << 20)]   // many blocks per write: one run per request
    [InlineData(65536, 3000)]     // unaligned writes crossing blocks
    public void Sequential_writes_become_one_extent(int clusterSize, int writeSize)
    {
        using var dir = new TempDir();
        string path = dir.File("s.img");
        const long size = 8L << 20;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = size, ClusterSize = clusterSize }, Patient))
        {
            var data = ModelRunner.Pattern(writeSize, 5);
            for (long off = 0; off < size; off += writeSize)
                image.Write(off, data.AsSpan(0, (int)Math.Min(writeSize, size - off)));
        }
        using var reopened = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true });
        long chunks = (size / clusterSize + 4095) / 4096;   // extents never cross a 4096-block map chunk
        Assert.Equal(chunks, reopened.ExtentsLoaded);
        Assert.Equal(size, reopened.AllocatedBytes());
    }

    [Fact]
    public void Writes_and_reads_do_not_commit_metadata_until_a_flush()
    {
        using var dir = new TempDir();
        using var image = CowImage.Create(dir.File("c.img"), new ImageCreateOptions { Size = 64L << 20, ClusterSize = 4096 }, Patient);
        var block = new byte[4096];
        for (int i = 0; i < 2000; i++) image.Write(i * 8192L, block);
        for (int i = 0; i < 2000; i++) image.Read(i * 8192L, block);
        Assert.Equal(0, image.MetadataCommits);
        image.Flush();
        Assert.Equal(1, image.MetadataCommits);
        image.Flush();   // nothing new: no commit, only the data sync
        Assert.Equal(1, image.MetadataCommits);
    }
}
