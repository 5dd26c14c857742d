using CowDisk.Engine;
using CowDisk.Engine.Images;
using CowDisk.Tests.Crash;
using Xunit;

namespace CowDisk.Tests.Engine;

/// <summary>
/// Same-block races, made to happen on purpose by holding a reader inside its data-file read (through the
/// storage seam) while other threads change the block's mapping.
/// </summary>
public class ConcurrencyRaceTests
{
    private const int Cs = 4096;

    /// <summary>A thread of its own: a blocked thread-pool thread would delay the other side by the pool's injection rate.</summary>
    private static Task Run(Action action)
    {
        var done = new TaskCompletionSource();
        new Thread(() =>
        {
            try { action(); done.SetResult(); }
            catch (Exception e) { done.SetException(e); }
        }) { IsBackground = true }.Start();
        return done.Task;
    }

    /// <summary>
    /// A read that resolved block 0 to cluster P is still reading P while block 0 is discarded, flushed, and
    /// another block written. The flush must wait for the read (drain) before P may be reused, so the read
    /// returns block 0's data, never the other block's.
    /// </summary>
    [Fact]
    public void A_flush_waits_for_reads_in_flight_before_freed_clusters_are_reused()
    {
        using var dir = new TempDir();
        var storage = new PowerLossStorage();
        string path = dir.File("disk.img");
        var settings = new EngineSettings { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };
        using var image = CowImage.Create(path, new ImageCreateOptions { Size = 64 * Cs, ClusterSize = Cs }, settings, storage);
        var a = ModelRunner.Pattern(Cs, 0x21);
        image.Write(0, a);
        image.Flush();

        using var inRead = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        int holding = 1;
        storage.BeforeRead = (file, _) =>
        {
            if (file == path && Interlocked.Exchange(ref holding, 0) == 1)
            {
                inRead.Set();
                release.Wait(TimeSpan.FromMilliseconds(300));   // long enough for the writer below, if nothing stops it
            }
        };
        var read = new byte[Cs];
        var reader = Run(() => image.Read(0, read));
        Assert.True(inRead.Wait(TimeSpan.FromSeconds(30)), "the reader never reached the data file");

        var writer = Run(() =>
        {
            image.Discard(0, Cs);
            image.Flush();                                   // must not return before the read is done
            image.Write(5 * Cs, ModelRunner.Pattern(Cs, 0x77)); // would take cluster P if it were released
        });
        writer.Wait(TimeSpan.FromMilliseconds(200));
        release.Set();
        reader.GetAwaiter().GetResult();
        writer.GetAwaiter().GetResult();
        Assert.True(read.AsSpan().SequenceEqual(a) || read.AsSpan().IndexOfAnyExcept((byte)0) < 0,
            "a read in flight returned another block's data after its cluster was freed and reused");
        image.CheckInvariants();
    }

    /// <summary>
    /// An answer for a read that was in the ring while a writer allocated the block must not overwrite the
    /// writer's new mapping in the cache: afterwards the block reads what was written, not the old zeros.
    /// </summary>
    [Fact]
    public void A_stale_read_answer_never_replaces_a_written_mapping_in_the_cache()
    {
        using var dir = new TempDir();
        const int blocks = 1024;
        using var image = CowImage.Create(dir.File("disk.img"), new ImageCreateOptions { Size = blocks * Cs, ClusterSize = Cs },
            new EngineSettings { MappingCache = true });
        int next = -1;
        var readers = Enumerable.Range(0, 3).Select(_ => Run(() =>
        {
            var buffer = new byte[Cs];
            while (Volatile.Read(ref next) < blocks)
            {
                int b = Volatile.Read(ref next) + 1;   // the block about to be written
                if (b < blocks) image.Read((long)b * Cs, buffer);
            }
        })).ToArray();
        for (int b = 0; b < blocks; b++)
        {
            Volatile.Write(ref next, b - 1);
            image.Write((long)b * Cs, ModelRunner.Pattern(Cs, (byte)(b % 250 + 1)));
        }
        Volatile.Write(ref next, blocks);
        Task.WaitAll(readers);
        var read = new byte[Cs];
        for (int b = 0; b < blocks; b++)
        {
            image.Read((long)b * Cs, read);
            Assert.True(read.AsSpan().SequenceEqual(ModelRunner.Pattern(Cs, (byte)(b % 250 + 1))), $"block {b} reads stale data");
        }
    }
}
