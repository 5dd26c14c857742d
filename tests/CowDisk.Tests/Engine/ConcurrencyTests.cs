using CowDisk.Engine;
using CowDisk.Engine.Images;
using Xunit;

namespace CowDisk.Tests.Engine;

public class ConcurrencyTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Concurrent_writers_to_one_unallocated_block_get_one_allocation(bool mappingCache)
    {
        using var dir = new TempDir();
        const int cs = 65536, writers = 8, rounds = 40;
        var settings = new EngineSettings { MappingCache = mappingCache };
        using var image = CowImage.Create(dir.File("c.img"), new ImageCreateOptions { Size = rounds * (long)cs, ClusterSize = cs }, settings);
        for (int round = 0; round < rounds; round++)
        {
            long blockStart = (long)round * cs;
            using var start = new Barrier(writers);
            var threads = Enumerable.Range(0, writers).Select(w => TestThread.Start($"writer-{w}", () =>
            {
                var part = new byte[cs / writers];
                Array.Fill(part, (byte)(w + 1));
                start.SignalAndWait();
                image.Write(blockStart + w * part.Length, part);   // each a partial write of the same new block
            })).ToList();
            threads.ForEach(t => t.Join());
        }
        var report = image.CheckInvariants();
        Assert.Equal(rounds, report.MappedClusters);
        Assert.Equal(rounds * (long)cs, image.AllocatedBytes());
        var block = new byte[cs];
        for (int round = 0; round < rounds; round++)
        {
            image.Read((long)round * cs, block);
            for (int w = 0; w < writers; w++)
                Assert.True(block.AsSpan(w * cs / writers, cs / writers).IndexOfAnyExcept((byte)(w + 1)) < 0, $"round {round}, writer {w} lost its bytes");
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Threads_on_disjoint_ranges_match_the_model(bool mappingCache)
    {
        using var dir = new TempDir();
        const int cs = 4096, threads = 4;
        const long size = 4L << 20;
        File.WriteAllBytes(dir.File("base.raw"), ModelRunner.Pattern((int)size, 0x33));
        var model = ModelRunner.Pattern((int)size, 0x33);
        var settings = new EngineSettings { MappingCache = mappingCache, CommitIntervalMs = 5, CommitMaxDirtyChunks = 1 };
        using var image = CowImage.Create(dir.File("t.img"), new ImageCreateOptions { ClusterSize = cs, BackingPath = "base.raw" }, settings);
        long slice = size / threads;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<Exception>();
        var workers = Enumerable.Range(0, threads).Select(t => new Thread(() =>
        {
          try
          {
            var rng = new Random(1000 + t);
            var buffer = new byte[3 * cs];
            for (int i = 0; i < 600; i++)
            {
                long off = t * slice + rng.NextInt64(slice - buffer.Length);
                int len = rng.Next(1, buffer.Length);
                switch (rng.Next(10))
                {
                    case < 6:
                        rng.NextBytes(buffer.AsSpan(0, len));
                        image.Write(off, buffer.AsSpan(0, len));
                        lock (model) buffer.AsSpan(0, len).CopyTo(model.AsSpan((int)off));
                        break;
                    case < 8:
                        image.Read(off, buffer.AsSpan(0, len));
                        lock (model)
                            if (!buffer.AsSpan(0, len).SequenceEqual(model.AsSpan((int)off, len)))
                                throw new Xunit.Sdk.XunitException($"thread {t}: read at {off}+{len} differs from the model");
                        break;
                    case 8:
                        image.Discard(off, len);
                        lock (model) model.AsSpan((int)off, len).Clear();
                        break;
                    default:
                        image.Flush();
                        break;
                }
            }
          }
          catch (Exception e) { failures.Enqueue(e); }
        })).ToList();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        Assert.Empty(failures);
        var all = new byte[size];
        image.Read(0, all);
        Assert.True(all.AsSpan().SequenceEqual(model), "final contents differ from the model");
        image.CheckInvariants();
    }
}
