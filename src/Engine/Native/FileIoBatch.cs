using System.Diagnostics;
using CowDisk.Format.IoUring;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>One transfer of a batch: <see cref="Length"/> bytes at <see cref="Address"/> (pinned by the caller) and <see cref="Offset"/> in the file.</summary>
internal readonly record struct FileIoPiece(long Offset, nint Address, int Length);

/// <summary>
/// Several reads or writes of one file in flight at once from one thread, through a small io_uring of the
/// thread's own. For direct I/O (O_DIRECT), where every transfer waits on the disk and one after another their
/// waits add up: a 1 MiB write over clusters whose first writes were partial was about 110 writes in turn.
/// A call returns only when the kernel has completed every transfer it was given, so the caller's buffers are its
/// own again. Where io_uring cannot be had (an old kernel, kernel.io_uring_disabled, a seccomp filter)
/// <see cref="ForThisThread"/> gives null and the caller transfers one piece at a time.
/// </summary>
internal sealed unsafe class FileIoBatch
{
    private const uint Entries = 64;
    [ThreadStatic] private static FileIoBatch? t_batch;
    private static volatile bool s_unavailable;
    private readonly IoUring _ring;
    private int _inFlight;   // submitted (or filled) and not yet reaped: never left above 0 when a call returns

    private FileIoBatch(IoUring ring) => _ring = ring;

    // How long this thread spins for its transfers' completions before it sleeps, learnt from how long they take
    // (a disk slower than the cap is not spun for); null: it sleeps at once.
    [ThreadStatic] private static PollWindow? t_poll;
    [ThreadStatic] private static long t_transfers;

    /// <summary>This thread spins for its transfers' completions within <paramref name="window"/> (a polling server thread); null: it does not.</summary>
    public static void PollOnThisThread(PollWindow? window) => t_poll = window;

    /// <summary>This thread's batch if the thread polls (see <see cref="PollOnThisThread"/>); else null.</summary>
    public static FileIoBatch? ForPollingThread() => t_poll is { MaxTicks: > 0 } ? ForThisThread() : null;

    /// <summary>Single transfers (<see cref="Transfer"/>) this thread has made: for tests.</summary>
    internal static long TransfersOnThisThread => t_transfers;

    // The thread has ended (its static reference went with it): so does its ring. No transfer is in flight then.
    ~FileIoBatch() => _ring.Dispose();

    /// <summary>This thread's batch, made on first use; null where io_uring is not available.</summary>
    public static FileIoBatch? ForThisThread()
    {
        if (t_batch is { } batch) return batch;
        if (s_unavailable) return null;
        IoUring ring;
        try { ring = CreateRing(); }
        catch (IOException e)
        {
            // No io_uring here, or not for us: say so once for the process. Out of descriptors or memory may pass.
            if (e.HResult is not (Errno.EMFILE or Errno.ENFILE or Errno.ENOMEM)) s_unavailable = true;
            return null;
        }
        if ((ring.Features & IoUringFeatures.RwCurPos) == 0)
        {
            ring.Dispose();   // a kernel before 5.6: no IORING_OP_READ / IORING_OP_WRITE
            s_unavailable = true;
            return null;
        }
        return t_batch = new FileIoBatch(ring);
    }

    private static IoUring CreateRing()
    {
        // DEFER_TASKRUN: completions are reaped only inside our own io_uring_enter, never by interrupting the thread.
        try { return IoUring.Create(Entries, Entries * 2, IoUringSetupFlags.SingleIssuer | IoUringSetupFlags.DeferTaskRun); }
        catch (IOException e) when (e.HResult == Errno.EINVAL) { return IoUring.Create(Entries, Entries * 2, IoUringSetupFlags.None); }
    }

    /// <summary>
    /// Writes every piece; 0, or the first failure as -errno (the other pieces are still written or failed by then).
    /// </summary>
    public int Write(SafeFileHandle handle, ReadOnlySpan<FileIoPiece> pieces) => Run(handle, pieces, write: true);

    /// <summary>
    /// Reads every piece in full; what lies past the end of the file reads as zeros. 0, or the first failure as -errno.
    /// </summary>
    public int Read(SafeFileHandle handle, ReadOnlySpan<FileIoPiece> pieces) => Run(handle, pieces, write: false);

    /// <summary>
    /// One read or write, as pread/pwrite would do it (bytes transferred, short only at the end of the file for
    /// a read; or -errno), for a polling thread: it spins for the completion instead of sleeping in the call.
    /// </summary>
    public long Transfer(SafeFileHandle handle, FileIoPiece piece, bool write)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            if (_inFlight != 0) throw new InvalidOperationException("a file I/O batch is already running on this thread");
            int fd = (int)handle.DangerousGetHandle();
            var sqe = write ? IoUringSqe.Write(fd, (ulong)piece.Address, (uint)piece.Length, (ulong)piece.Offset, 0)
                            : IoUringSqe.Read(fd, (ulong)piece.Address, (uint)piece.Length, (ulong)piece.Offset, 0);
            sqe.Write(_ring.NextEntry());
            _inFlight++;
            t_transfers++;
            long got = TakeOne();
            if (got == -Errno.EAGAIN || got == -Errno.EINTR) got = 0;   // not expected of a regular file: done by hand below
            else if (got < 0) return got;
            if (got < piece.Length)
            {
                long rest = Libc.Transfer(handle, (byte*)piece.Address + got, piece.Length - got, piece.Offset + got, write);
                if (rest < 0) return rest;
                got += rest;
            }
            return got;
        }
        finally
        {
            if (_inFlight != 0) Drain();
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>Submits the one queued transfer and reaps its completion (spinning first on a polling thread).</summary>
    private int TakeOne()
    {
        int refusals = 0;
        var poll = t_poll;
        long start = Stopwatch.GetTimestamp(), pollUntil = poll is { Ticks: > 0 } ? start + poll.Ticks : 0;
        while (true)
        {
            bool spin = pollUntil != 0 && Stopwatch.GetTimestamp() < pollUntil;
            Enter(spin ? 0u : 1u, ref refusals);
            if (_ring.TryTakeCompletion(out var done))
            {
                _inFlight--;
                if (done.UserData != 0) Environment.FailFast($"io_uring completion for transfer {done.UserData} of a single transfer");
                poll?.Waited(Stopwatch.GetTimestamp() - start);
                return done.Result;
            }
            if (spin) Thread.Yield();   // a thread woken on this CPU runs at once
        }
    }

    private int Run(SafeFileHandle handle, ReadOnlySpan<FileIoPiece> pieces, bool write)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);   // the descriptor stays open while the kernel holds its transfers
        try
        {
            if (_inFlight != 0) throw new InvalidOperationException("a file I/O batch is already running on this thread");
            int fd = (int)handle.DangerousGetHandle(), failure = 0;
            for (int start = 0; start < pieces.Length; start += (int)Entries)
            {
                var chunk = pieces.Slice(start, Math.Min((int)Entries, pieces.Length - start));
                for (int i = 0; i < chunk.Length; i++)
                {
                    var p = chunk[i];
                    var sqe = write ? IoUringSqe.Write(fd, (ulong)p.Address, (uint)p.Length, (ulong)p.Offset, (ulong)i)
                                    : IoUringSqe.Read(fd, (ulong)p.Address, (uint)p.Length, (ulong)p.Offset, (ulong)i);
                    sqe.Write(_ring.NextEntry());   // the ring is empty between chunks, and a chunk fits it
                    _inFlight++;
                }
                int error = Complete(handle, chunk, write);
                if (failure == 0) failure = error;
            }
            return failure;
        }
        finally
        {
            // Reached with transfers in flight only by an exception: the kernel may still use the caller's buffers,
            // so they are not handed back before every one is reaped.
            if (_inFlight != 0) Drain();
            if (added) handle.DangerousRelease();
        }
    }

    private void Drain()
    {
        for (int refusals = 0; _inFlight > 0;)
        {
            Enter((uint)_inFlight, ref refusals);
            while (_ring.TryTakeCompletion(out _)) _inFlight--;
        }
    }

    /// <summary>
    /// Submits what is queued and waits for <paramref name="wait"/> completions. The kernel may still be writing
    /// into (or reading from) the caller's buffers, so a failure is never a reason to return: EINTR, EAGAIN and
    /// EBUSY pass, and an error that stays is a broken ring, which ends the process.
    /// </summary>
    private void Enter(uint wait, ref int refusals)
    {
        int rc = _ring.SubmitAndWait(wait);
        if (rc >= 0 || rc == -Errno.EINTR) return;
        if (++refusals > 1000) Environment.FailFast($"io_uring_enter keeps failing with file transfers in flight: {Errno.Describe(-rc)}");
        Thread.Sleep(1);
    }

    /// <summary>Submits the chunk and reaps every one of its completions; a short transfer is finished in place.</summary>
    private int Complete(SafeFileHandle handle, ReadOnlySpan<FileIoPiece> chunk, bool write)
    {
        int pending = chunk.Length, failure = 0, refusals = 0;
        var poll = t_poll;
        long start = Stopwatch.GetTimestamp(), pollUntil = poll is { Ticks: > 0 } ? start + poll.Ticks : 0;
        while (pending > 0)
        {
            // A polling thread spins (entering without waiting: that also runs the completions' task work) until
            // its window has passed, then sleeps for the rest.
            bool spin = pollUntil != 0 && Stopwatch.GetTimestamp() < pollUntil;
            Enter(spin ? 0u : (uint)pending, ref refusals);
            if (spin && _ring.CompletionsReady == 0) Thread.Yield();   // a thread woken on this CPU runs at once
            while (_ring.TryTakeCompletion(out var done))
            {
                pending--;
                _inFlight--;
                if (done.UserData >= (ulong)chunk.Length) Environment.FailFast($"io_uring completion for transfer {done.UserData} of a batch of {chunk.Length}");
                var piece = chunk[(int)done.UserData];
                long got = done.Result;
                if (got == -Errno.EAGAIN || got == -Errno.EINTR) got = 0;   // not expected of a regular file: done by hand below
                else if (got < 0) { if (failure == 0) failure = done.Result; continue; }
                if (got < piece.Length)
                {
                    long rest = Libc.Transfer(handle, (byte*)piece.Address + got, piece.Length - got, piece.Offset + got, write);
                    if (rest < 0) { if (failure == 0) failure = (int)rest; continue; }
                    got += rest;
                    if (!write && got < piece.Length) new Span<byte>((byte*)piece.Address + got, (int)(piece.Length - got)).Clear();   // the end of the file
                }
            }
        }
        poll?.Waited(Stopwatch.GetTimestamp() - start);
        return failure;
    }
}
