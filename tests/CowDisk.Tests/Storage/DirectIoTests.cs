using CowDisk.Engine.Storage;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Storage;

/// <summary>The data file with O_DIRECT: unaligned I/O through the bounce buffer reads and writes exactly the bytes asked.</summary>
public sealed class DirectIoTests
{
    private static HostStorageFile OpenDirect(string path, long length)
    {
        var file = (HostStorageFile)HostStorage.Instance.Create(path);
        file.SetLength(length);
        file.EnableDirectIo();
        Assert.True(file.DirectIo);
        return file;
    }

    [Fact]
    public void Unaligned_reads_and_writes_at_any_offset_and_buffer_position_match_a_model()
    {
        using var dir = new TempDir();
        const int size = 3 << 20;
        using var file = OpenDirect(dir.File("data"), size);
        var model = new byte[size];
        var rng = new Random(7);
        for (int i = 0; i < 400; i++)
        {
            int offset = rng.Next(0, size - 1), length = rng.Next(1, Math.Min(size - offset, i % 10 == 0 ? 1_500_000 : 9000));
            int at = rng.Next(0, 17);   // buffers that start off any alignment
            var buffer = new byte[at + length];
            rng.NextBytes(buffer);
            file.Write(offset, buffer.AsSpan(at, length));
            buffer.AsSpan(at, length).CopyTo(model.AsSpan(offset));

            int readOffset = rng.Next(0, size - 1), readLength = rng.Next(1, Math.Min(size - readOffset, 1_200_000));
            var read = new byte[readLength + 3];
            Assert.Equal(readLength, file.Read(readOffset, read.AsSpan(3, readLength)));
            Assert.True(read.AsSpan(3, readLength).SequenceEqual(model.AsSpan(readOffset, readLength)), $"step {i}: read {readOffset}+{readLength} differs");
        }
        // Past the end: a short read, no bytes invented.
        var tail = new byte[5000];
        Assert.Equal(100, file.Read(size - 100, tail));
    }

    [Fact]
    public void Concurrent_writes_into_one_sector_do_not_undo_each_other()
    {
        using var dir = new TempDir();
        using var file = OpenDirect(dir.File("data"), 1 << 20);
        const int writers = 8, slice = 64, rounds = 300;
        var threads = Enumerable.Range(0, writers).Select(w => new Thread(() =>
        {
            var data = new byte[slice];
            for (int r = 1; r <= rounds; r++)
            {
                Array.Fill(data, (byte)r);
                file.Write(4096 + w * slice + 1, data);   // all in one sector, none aligned
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var sector = new byte[writers * slice];
        file.Read(4097, sector);
        for (int w = 0; w < writers; w++)
            Assert.True(sector.AsSpan(w * slice, slice).IndexOfAnyExcept((byte)(rounds % 256)) < 0, $"writer {w}'s bytes were undone by another");
    }

    /// <summary>
    /// Aligned direct writes over written space, unwritten (preallocated) space and holes are split where the kind
    /// changes (WriteDirectPieces); every byte lands where it was written, whatever the mix.
    /// </summary>
    [Fact]
    public unsafe void Aligned_writes_across_written_unwritten_and_hole_space_match_a_model()
    {
        using var dir = new TempDir();
        const int size = 4 << 20, block = 4096;
        using var file = OpenDirect(dir.File("data"), size);
        Assert.True(file.Preallocate(1 << 20, 1 << 20));   // [1, 2) MiB unwritten, the rest a hole
        var model = new byte[size];
        var rng = new Random(11);
        byte* memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(1 << 20, block);
        try
        {
            var buffer = new Span<byte>(memory, 1 << 20);
            for (int i = 0; i < 300; i++)
            {
                // Small islands of written space first, then writes that span them and what lies around.
                int length = i < 100 ? block : rng.Next(2, 257) * block;
                int offset = rng.Next(0, (size - length) / block + 1) * block;
                rng.NextBytes(buffer[..length]);
                file.Write(offset, buffer[..length]);
                buffer[..length].CopyTo(model.AsSpan(offset));
                buffer[..length].Clear();
                Assert.Equal(length, file.Read(offset, buffer[..length]));   // now: a later write would hide a misplaced piece
                Assert.True(buffer[..length].SequenceEqual(model.AsSpan(offset, length)), $"write {i} at {offset}+{length} reads back differently");
            }
            for (int offset = 0; offset < size; offset += 1 << 20)
            {
                Assert.Equal(1 << 20, file.Read(offset, buffer));
                Assert.True(buffer.SequenceEqual(model.AsSpan(offset, 1 << 20)), $"the MiB at {offset} differs from the model");
            }
        }
        finally { System.Runtime.InteropServices.NativeMemory.AlignedFree(memory); }
    }

    /// <summary>A file whose end is not on the alignment (written without O_DIRECT): a write across it is one write.</summary>
    [Fact]
    public unsafe void An_aligned_write_across_an_unaligned_end_of_file_lands_whole()
    {
        using var dir = new TempDir();
        string path = dir.File("data");
        var start = new byte[(1 << 20) + 100];
        new Random(3).NextBytes(start);
        File.WriteAllBytes(path, start);
        using var file = (HostStorageFile)HostStorage.Instance.Open(path, StorageAccess.ReadWrite);
        file.EnableDirectIo();
        const int length = 256 << 10;
        byte* memory = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(length, 4096);
        try
        {
            var buffer = new Span<byte>(memory, length);
            new Random(4).NextBytes(buffer);
            file.Write((1 << 20) - (128 << 10), buffer);
            var expected = buffer.ToArray();
            buffer.Clear();
            Assert.Equal(length, file.Read((1 << 20) - (128 << 10), buffer));
            Assert.True(buffer.SequenceEqual(expected));
            Assert.Equal((1 << 20) + (128 << 10), file.Length);
        }
        finally { System.Runtime.InteropServices.NativeMemory.AlignedFree(memory); }
    }

    /// <summary>
    /// Many ranges at once (ReadPieces/WritePieces, in flight together through io_uring): more than one ring's worth,
    /// over written, unwritten and hole space, with reads past the end of the file reading zeros.
    /// </summary>
    [Fact]
    public void Reads_and_writes_of_many_pieces_at_once_match_a_model()
    {
        using var dir = new TempDir();
        const int size = 4 << 20, sector = 4096, pieces = 150;
        using var file = OpenDirect(dir.File("data"), size);
        Assert.True(file.Preallocate(1 << 20, 1 << 20));
        var model = new byte[size];
        var rng = new Random(21);
        using var buffer = new AlignedBuffer(pieces * 4 * sector);
        for (int round = 0; round < 12; round++)
        {
            // 1-4 sectors from sectors five apart or more (no two overlap), packed one after another in the buffer.
            var sectors = Enumerable.Range(0, size / sector - 4).Where(s => s % 5 == round % 5).OrderBy(_ => rng.Next()).Take(pieces).ToArray();
            var list = new StoragePiece[pieces];
            int at = 0;
            for (int i = 0; i < pieces; i++)
            {
                list[i] = new StoragePiece((long)sectors[i] * sector, at, rng.Next(1, 5) * sector);
                at += list[i].Length;
            }
            rng.NextBytes(buffer.Span);
            file.WritePieces(buffer.Span, list);
            foreach (var p in list) buffer.Span.Slice(p.BufferOffset, p.Length).CopyTo(model.AsSpan((int)p.FileOffset));

            buffer.Span.Fill(0xee);
            file.ReadPieces(buffer.Span, list.Reverse().ToArray());
            foreach (var p in list)
                Assert.True(buffer.Span.Slice(p.BufferOffset, p.Length).SequenceEqual(model.AsSpan((int)p.FileOffset, p.Length)), $"round {round}: piece {p} reads back differently");
        }
        // Past the end of the file: zeros, and the piece before it in full.
        buffer.Span.Fill(0xee);
        file.ReadPieces(buffer.Span, [new StoragePiece(size - sector, 0, sector), new StoragePiece(size, sector, 2 * sector), new StoragePiece(size - 2 * sector, 3 * sector, sector)]);
        Assert.True(buffer.Span[..sector].SequenceEqual(model.AsSpan(size - sector)));
        Assert.True(buffer.Span.Slice(sector, 2 * sector).IndexOfAnyExcept((byte)0) < 0, "past the end of the file reads as zeros");
        Assert.True(buffer.Span.Slice(3 * sector, sector).SequenceEqual(model.AsSpan(size - 2 * sector, sector)));
        Assert.Equal(0xee, buffer.Span[4 * sector]);
    }

    [Fact]
    public void Unaligned_pieces_go_one_by_one_and_match_a_model()
    {
        using var dir = new TempDir();
        const int size = 1 << 20;
        using var file = OpenDirect(dir.File("data"), size);
        var model = new byte[size];
        new Random(5).NextBytes(model);
        file.Write(0, model);
        using var buffer = new AlignedBuffer(64 << 10);
        buffer.Span.Fill(0xee);
        StoragePiece[] pieces = [new(4096, 1, 4096), new(10_000, 8192, 700), new(65536, 16384, 8192)];
        file.ReadPieces(buffer.Span, pieces);
        foreach (var p in pieces) Assert.True(buffer.Span.Slice(p.BufferOffset, p.Length).SequenceEqual(model.AsSpan((int)p.FileOffset, p.Length)));
        Assert.Equal(0xee, buffer.Span[0]);
        new Random(6).NextBytes(buffer.Span);
        file.WritePieces(buffer.Span, pieces);
        foreach (var p in pieces) buffer.Span.Slice(p.BufferOffset, p.Length).CopyTo(model.AsSpan((int)p.FileOffset));
        var all = new byte[size];
        Assert.Equal(size, file.Read(0, all));
        Assert.True(all.AsSpan().SequenceEqual(model));
    }

    /// <summary>
    /// Pieces on the alignment in the file from a buffer that is not: laid in the bounce buffer and sent together;
    /// more than it holds go one by one. Either way every byte lands where it belongs, and none outside the pieces.
    /// </summary>
    [Fact]
    public void Pieces_from_a_buffer_off_the_alignment_match_a_model()
    {
        using var dir = new TempDir();
        const int size = 4 << 20, sector = 4096;
        using var file = OpenDirect(dir.File("data"), size);
        Assert.NotNull(CowDisk.Engine.Native.FileIoBatch.ForThisThread());   // io_uring here: the batches are what this tests
        var model = new byte[size];
        new Random(8).NextBytes(model);
        file.Write(0, model);
        for (int hole = 8192; hole < size; hole += 64 << 10)   // written space and holes within the pieces: FIEMAP splits them
        {
            Assert.True(file.PunchHole(hole, 8192));
            model.AsSpan(hole, 8192).Clear();
        }
        var rng = new Random(9);
        foreach (int perPiece in new[] { 1, 3, 16, 40 })   // 40 sectors x 8 pieces: more than the bounce buffer
        {
            const int count = 8;
            var buffer = new byte[count * perPiece * sector + 7];
            var pieces = new StoragePiece[count];
            for (int i = 0; i < count; i++)   // sector ranges of the file in a shuffled order, 5 + 64 i sectors apart
                pieces[i] = new StoragePiece((long)(5 + 64 * ((i * 5) % count)) * sector, 1 + i * perPiece * sector, perPiece * sector);
            rng.NextBytes(buffer);
            file.WritePieces(buffer, pieces);
            foreach (var p in pieces) buffer.AsSpan(p.BufferOffset, p.Length).CopyTo(model.AsSpan((int)p.FileOffset));
            var all = new byte[size];
            Assert.Equal(size, file.Read(0, all));
            Assert.True(all.AsSpan().SequenceEqual(model), $"{perPiece} sectors a piece: the file differs from the model");

            Array.Fill(buffer, (byte)0xee);
            file.ReadPieces(buffer, pieces);
            foreach (var p in pieces)
                Assert.True(buffer.AsSpan(p.BufferOffset, p.Length).SequenceEqual(model.AsSpan((int)p.FileOffset, p.Length)), $"{perPiece} sectors a piece: {p} reads back differently");
            Assert.Equal(0xee, buffer[0]);
            Assert.Equal(0xee, buffer[^1]);
        }
    }

    /// <summary>A failing transfer reports its errno; the call still waits for every other one.</summary>
    [Fact]
    public unsafe void A_batch_whose_transfers_fail_returns_the_errno()
    {
        using var dir = new TempDir();
        string path = dir.File("data");
        File.WriteAllBytes(path, new byte[1 << 20]);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        var batch = CowDisk.Engine.Native.FileIoBatch.ForThisThread();
        Assert.NotNull(batch);
        using var buffer = new AlignedBuffer(100 * 4096);
        buffer.Span.Fill(7);
        fixed (byte* p = buffer.Span)
        {
            var transfers = new CowDisk.Engine.Native.FileIoPiece[100];
            for (int i = 0; i < transfers.Length; i++) transfers[i] = new(i * 4096L, (nint)(p + i * 4096), 4096);
            Assert.Equal(-CowDisk.Engine.Native.Errno.EBADF, batch!.Write(handle, transfers));   // opened for reading only
            Assert.Equal(0, batch.Read(handle, transfers));
        }
        Assert.True(buffer.Span.IndexOfAnyExcept((byte)0) < 0, "every piece was read");
    }
}

/// <summary>
/// A polling thread (the /dev/fuse server's poller) submits its direct I/O through io_uring and spins for the
/// completion: the bytes, the short count at the end of the file and the errors are those of pread and pwrite.
/// </summary>
public sealed class PolledDirectIoTests
{
    [Theory]
    [InlineData(1_000_000)]   // the window grows to cover the transfers: it spins for them
    [InlineData(1)]           // the window ends at once: it sleeps for the completion
    public void Polled_reads_and_writes_match_a_model(int pollMicroseconds)
    {
        using var dir = new TempDir();
        const int size = 2 << 20;
        var failure = (Exception?)null;
        var t = TestThread.Start("poller", () =>
        {
            var window = new CowDisk.Engine.Native.PollWindow(pollMicroseconds);
            CowDisk.Engine.Native.FileIoBatch.PollOnThisThread(window);
            try
            {
                long transfersBefore = CowDisk.Engine.Native.FileIoBatch.TransfersOnThisThread;
                Assert.NotNull(CowDisk.Engine.Native.FileIoBatch.ForPollingThread());
                using var file = (HostStorageFile)HostStorage.Instance.Create(dir.File("data"));
                file.SetLength(size);
                file.EnableDirectIo();
                var model = new byte[size];
                var rng = new Random(pollMicroseconds);
                for (int i = 0; i < 300; i++)
                {
                    int offset = rng.Next(0, size - 1), length = rng.Next(1, Math.Min(size - offset, i % 7 == 0 ? 300_000 : 9000));
                    if (i % 3 == 0) { offset &= ~4095; length = Math.Max(4096, length & ~4095); length = Math.Min(length, size - offset); }   // straight through
                    using var buffer = new AlignedBuffer(length + 4096);
                    int at = i % 3 == 0 ? 0 : rng.Next(0, 17);
                    var data = buffer.Span.Slice(at, length);
                    rng.NextBytes(data);
                    file.Write(offset, data);
                    data.CopyTo(model.AsSpan(offset));

                    int readOffset = rng.Next(0, size - 1) & (i % 2 == 0 ? ~4095 : ~0);
                    int readLength = Math.Min(size - readOffset, rng.Next(1, 200_000)) & (i % 2 == 0 ? ~4095 : ~0);
                    if (readLength == 0) continue;
                    using var read = new AlignedBuffer(readLength + 4096);
                    Assert.Equal(readLength, file.Read(readOffset, read.Span[..readLength]));
                    Assert.True(read.Span[..readLength].SequenceEqual(model.AsSpan(readOffset, readLength)), $"step {i}: read {readOffset}+{readLength} differs");
                }
                using var tail = new AlignedBuffer(8192);
                Assert.Equal(4096, file.Read(size - 4096, tail.Span));   // the end of the file: a short count, as pread gives
                Assert.True(tail.Span[..4096].SequenceEqual(model.AsSpan(size - 4096)));
                Assert.True(CowDisk.Engine.Native.FileIoBatch.TransfersOnThisThread - transfersBefore >= 300, "the aligned reads and writes went through the polled transfer");
                if (pollMicroseconds > 1000) Assert.True(window.Ticks > 0, "the window learnt nothing from the transfers");
                else Assert.True(window.Ticks <= window.MaxTicks);
            }
            catch (Exception e) { failure = e; }
            finally { CowDisk.Engine.Native.FileIoBatch.PollOnThisThread(null); }
        });
        t.Join();
        if (failure is not null) throw new Xunit.Sdk.XunitException(failure.ToString());
    }

    [Fact]
    public unsafe void A_polled_transfer_reports_the_errno()
    {
        using var dir = new TempDir();
        string path = dir.File("data");
        File.WriteAllBytes(path, new byte[1 << 16]);
        var t = TestThread.Start("poller", () =>
        {
            CowDisk.Engine.Native.FileIoBatch.PollOnThisThread(new CowDisk.Engine.Native.PollWindow(1_000_000));
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read);
            using var buffer = new AlignedBuffer(4096);
            var batch = CowDisk.Engine.Native.FileIoBatch.ForPollingThread()!;
            fixed (byte* p = buffer.Span)
            {
                var piece = new CowDisk.Engine.Native.FileIoPiece(4096, (nint)p, 4096);
                Assert.Equal(-CowDisk.Engine.Native.Errno.EBADF, batch.Transfer(handle, piece, write: true));   // opened for reading only
                Assert.Equal(4096, batch.Transfer(handle, piece, write: false));
                Assert.Equal(0, batch.Transfer(handle, piece with { Offset = 1 << 16 }, write: false));   // at the end: nothing
            }
        });
        t.Join();
        Assert.Null(CowDisk.Engine.Native.FileIoBatch.ForPollingThread());   // this thread does not poll
    }
}
