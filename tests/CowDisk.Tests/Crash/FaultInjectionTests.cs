using CowDisk.Engine;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Tests.Engine;
using Xunit;
using Op = CowDisk.Tests.Crash.PowerLossStorage.StorageOp;

namespace CowDisk.Tests.Crash;

/// <summary>
/// Failures injected through the storage seam: ENOSPC and EIO on data writes, data flushes and metadata
/// commits. The client gets the errno, nothing half-committed stays behind, and once the fault clears the
/// image works again; a power cut at any moment still honours the crash contract.
/// </summary>
public class FaultInjectionTests
{
    private const int Cs = 4096;
    private const int Enospc = 28, Eio = 5;
    private static readonly EngineSettings Settings = new() { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };

    private static (CowImage Image, PowerLossStorage Storage, string Path, TempDir Dir) NewImage()
    {
        var dir = new TempDir();
        var storage = new PowerLossStorage();
        string path = dir.File("disk.img");
        var image = CowImage.Create(path, new ImageCreateOptions { Size = 64 * Cs, ClusterSize = Cs }, Settings, storage);
        return (image, storage, path, dir);
    }

    private static byte[] ReadAfterPowerCut(PowerLossStorage storage, string path, long offset, int length)
    {
        using var crashed = CowImage.Open(path, new ImageOpenOptions { Settings = Settings, Storage = storage.Crash(new Random(1)) });
        crashed.CheckInvariants();
        var buffer = new byte[length];
        crashed.Read(offset, buffer);
        return buffer;
    }

    [Theory]
    [InlineData(Enospc)]
    [InlineData(Eio)]
    public void A_failed_data_write_reaches_the_client_with_its_errno_and_commits_no_mapping(int errno)
    {
        var (image, storage, path, dir) = NewImage();
        using (dir)
        using (image)
        {
            image.Write(0, ModelRunner.Pattern(Cs, 1));
            image.Flush();
            storage.Fault = (op, p) => op == Op.Write && p == path ? errno : 0;
            var e = Assert.ThrowsAny<BlockDeviceException>(() => image.Write(8 * Cs, ModelRunner.Pattern(2 * Cs, 2)));
            Assert.Equal(errno, e.Errno);
            // Reads and flushes keep working while the data file refuses writes.
            var read = new byte[Cs];
            image.Read(0, read);
            Assert.Equal(ModelRunner.Pattern(Cs, 1), read);
            image.Flush();
            Assert.Equal(new byte[2 * Cs], ReadAfterPowerCut(storage, path, 8 * Cs, 2 * Cs));   // no mapping to garbage
            storage.Fault = null;
            image.Write(8 * Cs, ModelRunner.Pattern(2 * Cs, 3));   // space is back: writes work again
            image.Flush();
            Assert.Equal(ModelRunner.Pattern(2 * Cs, 3), ReadAfterPowerCut(storage, path, 8 * Cs, 2 * Cs));
            image.CheckInvariants();
        }
    }

    [Fact]
    public void A_metadata_log_that_cannot_grow_fails_the_flush_and_the_retry_commits()
    {
        var (image, storage, path, dir) = NewImage();
        using (dir)
        using (image)
        {
            string log = ImageFiles.For(path).MetadataLogPath;
            image.Write(0, ModelRunner.Pattern(Cs, 1));
            image.Flush();
            image.Write(4 * Cs, ModelRunner.Pattern(3 * Cs, 2));
            storage.Fault = (op, p) => op == Op.Write && p == log ? Enospc : 0;
            Assert.Equal(Enospc, Assert.ThrowsAny<BlockDeviceException>(() => image.Flush()).Errno);
            // The durable state is the previous commit's: the new write may be lost, the flushed one is not.
            Assert.Equal(ModelRunner.Pattern(Cs, 1), ReadAfterPowerCut(storage, path, 0, Cs));
            storage.Fault = null;
            image.Flush();   // the same mappings, committed again
            Assert.Equal(ModelRunner.Pattern(3 * Cs, 2), ReadAfterPowerCut(storage, path, 4 * Cs, 3 * Cs));
            image.CheckInvariants();
        }
    }

    /// <summary>
    /// After a failed fsync the kernel may have dropped dirty pages while still showing them (fsyncgate), so a
    /// retry could commit mappings to data that is gone: the session stops, and reopening recovers.
    /// </summary>
    [Theory]
    [InlineData(false)]   // the data file's fdatasync
    [InlineData(true)]    // the metadata log's
    public void A_failed_fsync_stops_the_session_and_a_reopen_recovers(bool logFsync)
    {
        var (image, storage, path, dir) = NewImage();
        using (dir)
        {
            string failing = logFsync ? ImageFiles.For(path).MetadataLogPath : path;
            image.Write(0, ModelRunner.Pattern(Cs, 3));
            image.Flush();
            image.Write(2 * Cs, ModelRunner.Pattern(2 * Cs, 4));
            storage.Fault = (op, p) => op == Op.Flush && p == failing ? Eio : 0;
            Assert.Equal(Eio, Assert.ThrowsAny<BlockDeviceException>(() => image.Flush()).Errno);
            storage.Fault = null;
            Assert.ThrowsAny<BlockDeviceException>(() => image.Write(8 * Cs, ModelRunner.Pattern(Cs, 5)));
            Assert.ThrowsAny<BlockDeviceException>(() => image.Flush());
            try { image.Dispose(); } catch (BlockDeviceException) { }
            var cut = ReadAfterPowerCut(storage, path, 0, 4 * Cs);
            Assert.Equal(ModelRunner.Pattern(Cs, 3), cut[..Cs]);
            Assert.True(IsMixOfOldAndNew(cut[(2 * Cs)..], ModelRunner.Pattern(2 * Cs, 4)), "the unflushed write reads old or new bytes only");
        }
    }

    /// <summary>
    /// The metadata log keeps space reserved. When the disk cannot renew it, writes that need a new extent fail
    /// with ENOSPC, while overwrites, flushes (which commit into the reserve) and the close go on; once the disk
    /// has room again, allocating writes work again.
    /// </summary>
    [Fact]
    public void A_full_disk_fails_allocating_writes_but_not_flushes_overwrites_or_the_close()
    {
        var (image, storage, path, dir) = NewImage();
        using (dir)
        {
            image.Write(0, ModelRunner.Pattern(Cs, 6));
            image.Flush();
            image.Write(3 * Cs, ModelRunner.Pattern(Cs, 7));   // written, its mapping not yet committed
            storage.NoRoomToReserve = true;                     // the disk fills
            image.Flush();                                      // commits into the reserve, and learns the disk is full
            Assert.Equal(Enospc, Assert.ThrowsAny<BlockDeviceException>(() => image.Write(9 * Cs, ModelRunner.Pattern(Cs, 8))).Errno);
            image.Write(0, ModelRunner.Pattern(Cs, 9));         // an overwrite needs no new extent
            image.Flush();
            long logBefore = storage.Contents(ImageFiles.For(path).MetadataLogPath).Length;
            for (int i = 0; i < 50; i++) { image.Discard(3 * Cs, Cs); image.Flush(); }   // zero bytes in place: no mapping changes
            Assert.Equal(logBefore, storage.Contents(ImageFiles.For(path).MetadataLogPath).Length);
            image.Write(3 * Cs, ModelRunner.Pattern(Cs, 7));    // in place again
            image.Dispose();                                    // clean: the close's commits fit in the reserve
            using (var reopened = CowImage.Open(path, new ImageOpenOptions { Settings = Settings, Storage = storage, ReadOnly = true }))
            {
                Assert.False(reopened.WasUnclean);
                var read = new byte[10 * Cs];
                reopened.Read(0, read);
                Assert.Equal(ModelRunner.Pattern(Cs, 9), read[..Cs]);
                Assert.Equal(ModelRunner.Pattern(Cs, 7), read[(3 * Cs)..(4 * Cs)]);
                Assert.True(read.AsSpan(9 * Cs).IndexOfAnyExcept((byte)0) < 0);
            }
            storage.NoRoomToReserve = false;                    // space freed
            using var again = CowImage.Open(path, new ImageOpenOptions { Settings = Settings, Storage = storage });
            again.Write(9 * Cs, ModelRunner.Pattern(Cs, 8));
            again.Flush();
        }
    }

    private static bool IsMixOfOldAndNew(byte[] read, byte[] written)
    {
        for (int i = 0; i < read.Length; i++)
            if (read[i] != 0 && read[i] != written[i]) return false;
        return true;
    }
}
