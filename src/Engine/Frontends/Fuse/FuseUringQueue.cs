using System.Diagnostics;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using CowDisk.Engine.Native;
using CowDisk.Format.Fuse;
using CowDisk.Format.IoUring;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// One thread's share of a FUSE-over-io_uring queue (the kernel keeps one queue per possible CPU and sends each
/// request to the queue of the CPU it was made on, into whichever of its entries was re-armed last; a queue may
/// have several threads, see FuseServer.StartIoUring). A thread pinned to that CPU owns an io_uring: it registers
/// its entries of the queue (each a 288-byte header and a payload buffer of max_write), and each completion of one
/// is a request (under load the thread may leave the CPU: see <see cref="FollowLoad"/>). Requests are served on
/// the queue thread, except those that may wait long on the disk (see <see cref="Placement"/>), which go to the
/// server's pool, so such a request holds only its entry, and big READs and WRITEs, which go to the bulk workers
/// (<see cref="FuseUringBulk"/>, whose rings then keep their entries until another kind of request arrives in one
/// and is returned here, unserved). A served entry goes back through COMMIT_AND_FETCH, which answers it and
/// re-arms it in one submission; the pool and the bulk workers hand entries back through a lock-free queue and wake the thread,
/// when it sleeps in io_uring_enter, through an eventfd whose read it keeps in the ring.
/// </summary>
internal sealed unsafe class FuseUringQueue : IDisposable
{
    private const ulong WakeTag = ulong.MaxValue;
    private const int Alignment = 4096;

    private readonly FuseServer _server;
    private readonly FuseRequestHandler _handler;
    private readonly FuseUringPool _pool;
    private readonly int _fd;
    private readonly ushort _queueId;
    private readonly bool _inline;
    private readonly int _entryCount;
    private readonly int _payloadSize;
    private readonly byte* _memory;          // per entry: header, then the two iovecs; payloads separately, aligned
    private readonly byte* _payloads;
    private readonly byte* _wakeBuffer;
    private const int EntryStride = 512;     // header (288) + 2 iovecs (32), rounded
    private readonly ConcurrentQueue<int> _served = new();   // entries served elsewhere to commit; ~entry: a request to dispatch
    private readonly EventFd _wake = new();
    private readonly ManualResetEventSlim _registered = new();
    private int _sleeping;
    private int _wakePending;
    private volatile bool _stopping;
    private int _live;                       // entries the kernel still holds or we are serving
    private int _inPool;                     // entries the pool is serving
    private readonly int[] _arrived;         // requests taken from one batch of completions
    private readonly FuseOpcode[] _opcodes;  // their opcodes, read once per request
    private readonly bool[] _slow;           // entries whose FSYNC or FALLOCATE the pool is serving (counted in the pool)
    private string? _failure;
    private double _batchAverage = 1;        // requests per wake-up, moving average
    private bool _pinned;
    // A READ came in the batch being dispatched. WRITEs then go to the pool rather than ahead of it on this thread
    // (so do they while the pool serves an FSYNC or FALLOCATE of any queue):
    // QD1 4 KiB reads beside a writer that fsyncs every 4 KiB write had a p50 of 160-180 us with the writes served
    // here, 41-44 us with them in the pool (/dev/fuse 57-70 us); writes alone (random writes at QD32) stay here.
    private bool _batchHasRead;
    private ulong[]? _freeCpus;              // where the thread may run when not pinned (the process's CPUs)

    // How long the thread spins for its next completion, and for its own direct I/O, before it sleeps (null: never).
    private readonly PollWindow? _poll, _diskPoll;

    public FuseUringQueue(FuseServer server, FuseRequestHandler handler, FuseUringPool pool, int fd, ushort queueId, int entries, int payloadSize,
        bool serveDataInline, bool failBeforeRegistering = false, int pollMicroseconds = 0)
    {
        // Only where requests wait on the disk (Engine:DirectIo). With the page cache on, a pinned queue thread is woken
        // on the CPU that just made the request, which is awake: fio 4 KiB reads QD1 p50 14 us without polling against
        // 29-31 us polling (pinned or not).
        if (pollMicroseconds > 0 && !serveDataInline) { _poll = new PollWindow(pollMicroseconds); _diskPoll = new PollWindow(pollMicroseconds); }
        _failBeforeRegistering = failBeforeRegistering;
        _server = server; _handler = handler; _pool = pool; _fd = fd; _queueId = queueId; _inline = serveDataInline;
        _entryCount = entries;
        _arrived = new int[entries];
        _opcodes = new FuseOpcode[entries];
        _slow = new bool[entries];
        _payloadSize = (payloadSize + Alignment - 1) / Alignment * Alignment;
        _memory = (byte*)NativeMemory.AlignedAlloc((nuint)(entries * EntryStride), Alignment);
        NativeMemory.Clear(_memory, (nuint)(entries * EntryStride));
        _payloads = (byte*)NativeMemory.AlignedAlloc((nuint)((long)entries * _payloadSize), Alignment);   // untouched until used
        _wakeBuffer = (byte*)NativeMemory.AlignedAlloc(64, 64);
        for (int i = 0; i < entries; i++)
        {
            var iov = (nint*)(Header(i) + FuseUringHeader.EncodedSize + 16);   // 16-aligned, after the header
            iov[0] = (nint)Header(i); iov[1] = FuseUringHeader.EncodedSize;
            iov[2] = (nint)Payload(i); iov[3] = _payloadSize;
        }
    }

    public ushort QueueId => _queueId;

    /// <summary>This queue thread's place in the server's list (how a bulk worker's completions name it).</summary>
    public int Index { get; init; }

    public int EntryCount => _entryCount;

    /// <summary>Where big READs and WRITEs go (null: to the pool, as the rest). Set before the thread starts.</summary>
    public FuseUringBulk? Bulk { get; set; }

    /// <summary>Lets idle CPUs poll while requests come (null: they halt). Set before the thread starts.</summary>
    public CpuIdlePolling? IdlePolling { get; set; }

    private readonly bool _failBeforeRegistering;

    private byte* Header(int entry) => _memory + (long)entry * EntryStride;
    private byte* Iovecs(int entry) => Header(entry) + FuseUringHeader.EncodedSize + 16;
    private byte* Payload(int entry) => _payloads + (long)entry * _payloadSize;

    /// <summary>
    /// Waits until the queue thread has registered its entries; returns null, or why it could not (the kernel
    /// refused: io_uring off, or too old). Entries registered, the kernel switches to the rings once every queue has some.
    /// </summary>
    public string? WaitRegistered(TimeSpan timeout) =>
        _registered.Wait(timeout) ? _failure : $"queue {_queueId} did not register in {timeout.TotalSeconds:0} s";

    /// <summary>The queue thread: pins itself, sets up its ring, registers, then serves until the connection ends.</summary>
    public void Run()
    {
        IoUring? ring = null;
        try
        {
            ProcessControl.MarkThreadAsIoFlusher();
            // A polling thread (Engine:DirectIo) stays pinned too: unpinned, random writes QD32 through the pool fell from
            // 55-80k to 39-66k IOPS (QD1 reads gained a little: p50 76-77 against 83-90 us).
            _freeCpus = ThreadAffinity.CurrentCpus();
            _pinned = ThreadAffinity.PinCurrentThread(_queueId);   // the kernel's queue for this CPU: serving it here keeps it local
            if (!_pinned) _freeCpus = null;   // its CPU is not ours (a cpuset, taskset): leave the thread where it may run
            if (_failBeforeRegistering) { Fail("failing before registering, as asked (a test)"); return; }
            ring = CreateRing((uint)_entryCount + 4);
            Volatile.Write(ref _live, _entryCount);
            for (int i = 0; i < _entryCount; i++) QueueCommand(ring, i, FuseUringCommand.Register, 0);
            ArmWake(ring);
            int submitted = ring.SubmitAndWait(0);
            if (submitted < 0) { Fail($"io_uring_enter failed: {Errno.Describe(-submitted)}"); return; }
            // A refused registration completes at once with its error; an accepted one stays with the kernel.
            while (ring.TryTakeCompletion(out var early))
            {
                if (early.UserData == WakeTag) { ArmWake(ring); continue; }
                if (early.Result < 0) { Fail($"FUSE_IO_URING_CMD_REGISTER failed: {Errno.Describe(-early.Result)}"); return; }
                Dispatch(ring, (int)early.UserData, OpcodeOf((int)early.UserData), alone: false);
            }
            _registered.Set();
            Serve(ring);
        }
        catch (Exception e)
        {
            if (!_registered.IsSet) Fail(e.Message);   // the server falls back to /dev/fuse
            else if (!_stopping)
            {
                // The kernel routes this CPU's requests to this queue and nowhere else: without it they would wait
                // forever. Ending the connection makes I/O on the device fail instead of hang.
                _server.Log($"fuse: io_uring queue {_queueId} failed ({e.Message}); ending the FUSE connection");
                _server.AbortConnection();
            }
        }
        finally
        {
            ring?.Dispose();   // closing the ring cancels what the kernel still holds
        }
    }

    internal static IoUring CreateRing(uint entries)
    {
        // COOP_TASKRUN: a request is copied into our buffers when this thread next enters the kernel (its preads
        // included), never by interrupting it. Measured against DEFER_TASKRUN (copied only inside io_uring_enter):
        // 4 KiB random writes at QD32 123-141k IOPS against 111-126k, reads level (172-176k against 168-175k).
        try { return IoUring.Create(entries, entries * 2, IoUringSetupFlags.Sqe128 | IoUringSetupFlags.SingleIssuer | IoUringSetupFlags.CoopTaskRun); }
        catch (IOException e) when (e.HResult == Errno.EINVAL)
        {
            return IoUring.Create(entries, entries * 2, IoUringSetupFlags.Sqe128);   // a kernel older than 5.19
        }
    }

    /// <summary>Null if this process can set up a queue's ring (io_uring_setup with its flags); else why not.</summary>
    internal static string? ProbeRing()
    {
        try
        {
            CreateRing(4).Dispose();
            return null;
        }
        catch (IOException e) { return e.Message; }
    }

    private void Fail(string why)
    {
        _failure ??= why;
        _registered.Set();
    }

    private void Serve(IoUring ring)
    {
        int arrived = 0;
        while (true)
        {
            while (_served.TryDequeue(out int entry))
            {
                if (entry >= 0) Commit(ring, entry);
                else _arrived[arrived++] = ~entry;   // returned by a bulk worker: dispatched with this batch
            }
            if (_stopping || Volatile.Read(ref _live) == 0) return;   // the last entries may end on bulk workers' rings
            long start = Stopwatch.GetTimestamp();
            if (arrived > 0) ThrowIfBroken(ring.SubmitAndWait(0));   // requests to dispatch: no waiting
            else if (!Spin(ring, start))
            {
                Interlocked.Exchange(ref _sleeping, 1);   // full fence: pairs with the pool's enqueue, then its read of _sleeping
                int result = _served.IsEmpty ? ring.SubmitAndWait(1) : ring.SubmitAndWait(0);
                Interlocked.Exchange(ref _sleeping, 0);
                ThrowIfBroken(result);
            }
            _poll?.Waited(Stopwatch.GetTimestamp() - start);
            while (ring.TryTakeCompletion(out var completion))
            {
                if (completion.UserData == WakeTag)
                {
                    Volatile.Write(ref _wakePending, 0);
                    ArmWake(ring);
                    continue;
                }
                int entry = (int)completion.UserData;
                if (completion.Result < 0)
                {
                    // The connection ended (ENOTCONN, ECONNABORTED) or the ring is going (ECANCELED): the entry is gone.
                    if (Interlocked.Decrement(ref _live) == 0) return;
                    continue;
                }
                _arrived[arrived++] = entry;
            }
            if (arrived > 0 && _inline) FollowLoad(arrived);
            if (arrived > 0) IdlePolling?.Touch(Stopwatch.GetTimestamp());
            _batchHasRead = false;
            for (int i = 0; i < arrived; i++)
            {
                _opcodes[i] = OpcodeOf(_arrived[i]);
                _batchHasRead |= _inline && _opcodes[i] == FuseOpcode.Read;
            }
            for (int i = 0; i < arrived; i++) Dispatch(ring, _arrived[i], _opcodes[i], alone: arrived == 1);
            arrived = 0;
        }
    }

    internal static void ThrowIfBroken(int result)
    {
        if (result < 0 && result != -Errno.EINTR && result != -Errno.EAGAIN && result != -Errno.EBUSY)
            throw new IOException($"io_uring_enter failed: {Errno.Describe(-result)}");
    }

    /// <summary>
    /// Polling (Engine:PollMicroseconds): submits what is queued (the answers just served go out at once) and spins,
    /// entering the kernel without waiting (which also delivers requests: their copy is task work) and yielding
    /// between tries, until a completion is ready, the pool has served one of ours, or the window has passed. Not
    /// while the pool serves as many of this queue's requests as there are CPUs: the load is then parallel and a spin
    /// would take their CPU (fewer, such as an fsync beside QD1 reads, mostly wait on the disk). True if something arrived.
    /// </summary>
    private bool Spin(IoUring ring, long start)
    {
        if (_poll is not { Ticks: > 0 } || Volatile.Read(ref _inPool) >= FuseServer.ParallelAt || !_served.IsEmpty) return false;
        long until = start + _poll.Ticks;
        while (true)
        {
            ThrowIfBroken(ring.SubmitAndWait(0));
            if (ring.CompletionsReady > 0 || !_served.IsEmpty) return true;   // the pool does not ring a thread that is awake
            if (Stopwatch.GetTimestamp() >= until) return false;
            Thread.Yield();   // a thread woken on this CPU (the client, whose I/O just completed) runs at once
        }
    }

    /// <summary>Above this many requests per wake-up (a moving average) the thread may leave its CPU; below the second it goes back.</summary>
    private const double UnpinAbove = 1.5, RepinBelow = 1.15;

    /// <summary>
    /// Pinned to the queue's CPU while requests come one at a time: waking on the CPU that made the request is the
    /// cheapest wake-up (4 KiB reads at QD1: 32-38k IOPS pinned against 20-24k always unpinned). Free to run on any CPU
    /// while they come in batches: the queue's CPU is then busy with the client and the loop worker that made them,
    /// and the scheduler can move the serving to a CPU with room (4 KiB random writes at QD32 with the page cache
    /// on: 116-120k IOPS against 83-91k pinned; reads and QD1 level). Only when the queue thread serves data itself
    /// (page cache on): with O_DIRECT the pool does the work, and the queue threads stay pinned (writes measured no
    /// better, perhaps worse, unpinned).
    /// </summary>
    private void FollowLoad(int arrived)
    {
        _batchAverage = _batchAverage * 0.9 + arrived * 0.1;
        if (_freeCpus is null) return;   // cannot move between pinned and free: one refusal stops the asking
        if (_pinned && _batchAverage > UnpinAbove)
        {
            _pinned = !ThreadAffinity.SetCurrentCpus(_freeCpus);
            if (_pinned) _freeCpus = null;
        }
        else if (!_pinned && _batchAverage < RepinBelow)
        {
            _pinned = ThreadAffinity.PinCurrentThread(_queueId);
            if (!_pinned) _freeCpus = null;
        }
    }

    /// <summary>
    /// A request arrived in the entry: served here if cheap, else by the pool. One that may wait on the disk is
    /// served here too when it is alone (no other request arrived with it, none is with the pool): at queue depth
    /// one a hand-over only adds two thread wake-ups to the wait.
    /// </summary>
    private void Dispatch(IoUring ring, int entry, FuseOpcode opcode, bool alone)
    {
        var where = Placement(opcode, entry);
        if (where == Place.Bulk && Bulk!.Post(this, entry)) { }
        else if (where == Place.Pool || (where != Place.Here && !(alone && Volatile.Read(ref _inPool) == 0)))
        {
            Interlocked.Increment(ref _inPool);
            if (opcode is FuseOpcode.Fsync or FuseOpcode.Fallocate) { _slow[entry] = true; _pool.SlowStarted(); }
            _pool.Post(this, entry);
        }
        else
        {
            // Alone, the thread spins for its own disk transfers too (with Engine:DirectIo); beside the pool it sleeps.
            FileIoBatch.PollOnThisThread(alone && Volatile.Read(ref _inPool) == 0 ? _diskPoll : null);
            ServeEntry(entry);
            Commit(ring, entry);
        }
    }

    private enum Place { Here, PoolUnlessAlone, Pool, Bulk }

    private FuseOpcode OpcodeOf(int entry) =>
        FuseInHeader.Read(new ReadOnlySpan<byte>(Header(entry) + FuseUringHeader.InOutOffset, FuseInHeader.EncodedSize)).Opcode;

    /// <summary>
    /// Where a request is served. FSYNC and FALLOCATE may take milliseconds: the pool, so the reads behind them go
    /// on, unless one is alone (then the hand-over would only add two wake-ups to its wait: an fsync-per-write
    /// writer beside QD1 reads did 3.6-4.5k writes/s served here against 3.2-3.8k through the pool, the reads' p99
    /// 218-245 against 253-289 us; /dev/fuse 3.7-4.9k and 208-264 us). READ and WRITE go to the pool (unless alone)
    /// when the device does its I/O directly (no page cache to absorb it). Big ones go to the bulk workers, even
    /// alone: a hand-over's two wake-ups are little beside copying a megabyte, which the kernel does in the thread
    /// whose ring holds the entry (see <see cref="FuseUringBulk"/>).
    /// With the page cache on, serving small ones here costs less than handing them over (fio 4 KiB QD32 here:
    /// random writes 129k IOPS here against 70k through the pool); with O_DIRECT each waits on the disk, and the
    /// pool keeps many in flight (random reads 38k against 13k).
    /// </summary>
    private Place Placement(FuseOpcode opcode, int entry)
    {
        if (opcode is FuseOpcode.Fsync or FuseOpcode.Fallocate) return Place.PoolUnlessAlone;
        if (opcode is not (FuseOpcode.Read or FuseOpcode.Write)) return Place.Here;
        uint length = DataLength(opcode, entry);
        if (length > BulkAbove && Bulk is not null) return Place.Bulk;
        if (!_inline) return Place.PoolUnlessAlone;
        // A write served here holds up every request behind it on this thread; reads beside writes wait least
        // when the writes go to the pool (see _batchHasRead), as do writes while an FSYNC or FALLOCATE is served.
        if (opcode == FuseOpcode.Write && (_batchHasRead || _pool.SlowInFlight > 0)) return Place.Pool;
        return length > BulkAbove ? Place.PoolUnlessAlone : Place.Here;
    }

    /// <summary>The entry holds a READ or WRITE the bulk workers serve (any thread, while it holds the entry).</summary>
    public bool WantsBulk(int entry)
    {
        var opcode = OpcodeOf(entry);
        return opcode is FuseOpcode.Read or FuseOpcode.Write && DataLength(opcode, entry) > BulkAbove;
    }

    /// <summary>The byte count of the entry's READ or WRITE.</summary>
    private uint DataLength(FuseOpcode opcode, int entry)
    {
        var argument = new ReadOnlySpan<byte>(Header(entry) + FuseUringHeader.OpInOffset, FuseUringHeader.OpInSize);
        return opcode == FuseOpcode.Read ? FuseReadIn.Read(argument).Length : FuseWriteIn.Read(argument).Length;
    }

    /// <summary>READs and WRITEs larger than this go to the bulk workers; the rest may be served on the queue thread.</summary>
    public const uint BulkAbove = 64 << 10;

    /// <summary>
    /// Serves the entry's request and writes its answer into the entry (header and payload). Any thread. True if
    /// the request or its answer carried more than <see cref="BulkAbove"/> bytes.
    /// </summary>
    public bool ServeEntry(int entry)
    {
        byte* header = Header(entry);
        var request = FuseInHeader.Read(new ReadOnlySpan<byte>(header + FuseUringHeader.InOutOffset, FuseInHeader.EncodedSize));
        var entInOut = FuseUringEntInOut.Read(new ReadOnlySpan<byte>(header + FuseUringHeader.EntInOutOffset, FuseUringEntInOut.EncodedSize));
        var argument = new ReadOnlySpan<byte>(header + FuseUringHeader.OpInOffset, FuseUringHeader.OpInSize);
        var payload = new Span<byte>(Payload(entry), _payloadSize);
        var received = payload[..(int)Math.Min(entInOut.PayloadSize, (uint)_payloadSize)];
        // A LOOKUP's first argument is empty on this transport, so its name arrives in the payload.
        if (request.Opcode == FuseOpcode.Lookup) argument = received;
        int result = _handler.Serve(request, argument, received, payload);
        if (result == FuseRequestHandler.NoReply) result = -Errno.ENOSYS;   // an entry is always answered (FORGET comes by /dev/fuse)
        int body = Math.Max(result, 0);
        new FuseOutHeader((uint)(FuseOutHeader.EncodedSize + body), result < 0 ? result : 0, request.Unique)
            .Write(new Span<byte>(header + FuseUringHeader.InOutOffset, FuseOutHeader.EncodedSize));
        new FuseUringEntInOut(0, entInOut.CommitId, (uint)body).Write(new Span<byte>(header + FuseUringHeader.EntInOutOffset, FuseUringEntInOut.EncodedSize));
        return received.Length > BulkAbove || body > BulkAbove;
    }

    /// <summary>The pool has served the entry: the queue thread commits it.</summary>
    public void Served(int entry)
    {
        if (_slow[entry]) { _slow[entry] = false; _pool.SlowEnded(); }
        Interlocked.Decrement(ref _inPool);
        HandBack(entry);
    }

    /// <summary>Another thread has served the entry: the queue thread commits it, which brings it back to this ring.</summary>
    public void HandBack(int entry) => Enqueue(entry);

    /// <summary>A request a bulk worker does not serve arrived in an entry its ring held: this thread dispatches it.</summary>
    public void Return(int entry) => Enqueue(~entry);

    private void Enqueue(int item)
    {
        _served.Enqueue(item);   // a full fence: then the read of _sleeping (Dekker with the queue thread)
        if (Volatile.Read(ref _sleeping) == 1 && Interlocked.Exchange(ref _wakePending, 1) == 0) _wake.Signal();
    }

    private void Commit(IoUring ring, int entry) => WriteCommit(NextEntry(ring), entry, (ulong)entry);

    /// <summary>A COMMIT_AND_FETCH of the served entry into the submission entry (of whichever ring will hold it).</summary>
    public void WriteCommit(Span<byte> sqe, int entry, ulong userData)
    {
        ulong commitId = FuseUringEntInOut.Read(new ReadOnlySpan<byte>(Header(entry) + FuseUringHeader.EntInOutOffset, FuseUringEntInOut.EncodedSize)).CommitId;
        IoUringSqe.UringCommand(_fd, (uint)FuseUringCommand.CommitAndFetch, 0, 0, userData).Write(sqe);
        new FuseUringCommandRequest(0, commitId, _queueId).Write(sqe[IoUringSqe.CommandOffset..]);
    }

    /// <summary>An entry a bulk worker's ring held has ended (the connection is gone, a commit was refused, or the worker died).</summary>
    public void EntryEnded(int entry)
    {
        if (Interlocked.Decrement(ref _live) == 0) _wake.Signal();   // the queue thread ends when its last entry has
    }

    private void QueueCommand(IoUring ring, int entry, FuseUringCommand command, ulong commitId)
    {
        var sqe = NextEntry(ring);
        var iov = command == FuseUringCommand.Register ? (ulong)Iovecs(entry) : 0;
        IoUringSqe.UringCommand(_fd, (uint)command, iov, command == FuseUringCommand.Register ? 2u : 0u, (ulong)entry).Write(sqe);
        new FuseUringCommandRequest(0, commitId, _queueId).Write(sqe[IoUringSqe.CommandOffset..]);
    }

    private void ArmWake(IoUring ring) =>
        IoUringSqe.Read(_wake.Fd, (ulong)_wakeBuffer, sizeof(ulong), 0, WakeTag).Write(NextEntry(ring));

    /// <summary>The ring's next submission entry; a full ring first submits what is queued.</summary>
    internal static Span<byte> NextEntry(IoUring ring)
    {
        var sqe = ring.NextEntry();
        if (sqe.IsEmpty)
        {
            ring.SubmitAndWait(0);   // full: hand what is queued to the kernel first
            sqe = ring.NextEntry();
            if (sqe.IsEmpty) throw new InvalidOperationException("io_uring submission ring stays full");
        }
        return sqe;
    }

    /// <summary>Asks the queue thread to stop (after an unmount its entries end by themselves).</summary>
    public void Stop()
    {
        _stopping = true;
        _wake.Signal();
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_memory);
        NativeMemory.AlignedFree(_payloads);
        NativeMemory.AlignedFree(_wakeBuffer);
        _wake.Dispose();
        _registered.Dispose();
    }
}

/// <summary>The threads that serve io_uring entries whose requests may wait on the disk, for every queue.</summary>
internal sealed class FuseUringPool : IDisposable
{
    private readonly BlockingCollection<(FuseUringQueue Queue, int Entry)> _work = new(new ConcurrentQueue<(FuseUringQueue, int)>());
    private readonly List<Thread> _threads = [];

    public FuseUringPool(int threads)
    {
        for (int i = 0; i < threads; i++)
        {
            var thread = new Thread(Work) { IsBackground = true, Name = $"fuse-uring-worker-{i}" };
            _threads.Add(thread);
            thread.Start();
        }
    }

    public void Post(FuseUringQueue queue, int entry) => _work.Add((queue, entry));

    private int _slowInFlight;

    /// <summary>FSYNCs and FALLOCATEs being served, from every queue.</summary>
    public int SlowInFlight => Volatile.Read(ref _slowInFlight);
    public void SlowStarted() => Interlocked.Increment(ref _slowInFlight);
    public void SlowEnded() => Interlocked.Decrement(ref _slowInFlight);

    private void Work()
    {
        ProcessControl.MarkThreadAsIoFlusher();
        foreach (var (queue, entry) in _work.GetConsumingEnumerable())
        {
            queue.ServeEntry(entry);
            queue.Served(entry);
        }
    }

    public bool Stop(TimeSpan timeout)
    {
        _work.CompleteAdding();
        bool all = true;
        foreach (var thread in _threads) all &= thread.Join(timeout);
        return all;
    }

    public void Dispose() => _work.Dispose();
}
