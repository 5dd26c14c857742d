using System.Diagnostics;
using System.Runtime.InteropServices;
using CowDisk.Engine.Native;
using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// One /dev/fuse server thread: reads a request, has the <see cref="FuseRequestHandler"/> serve it, writes the
/// reply. Its two buffers are allocated once; a request allocates nothing. The buffers are placed so that WRITE
/// payloads and READ reply payloads start on a 4 KiB boundary, which lets the device use them for O_DIRECT.
/// One worker may poll (see the constructor).
/// </summary>
internal sealed unsafe class FuseWorker : IDisposable
{
    private const int Alignment = 4096;
    private const int WritePayloadOffset = FuseInHeader.EncodedSize + FuseWriteIn.EncodedSize;
    // Reply room beyond the largest READ payload, for every other reply.
    private const int ReplySlack = 4096;

    private readonly FuseServer _server;
    private readonly FuseRequestHandler _handler;
    private readonly int _fd;
    private readonly byte* _requestAllocation;
    private readonly byte* _replyAllocation;
    private readonly byte* _request;
    private readonly byte* _reply;
    private readonly int _requestCapacity;
    private readonly int _replyCapacity;

    // Set on the one worker that polls: how long it spins for its next request, and for its disk transfers (each
    // learnt from its own waits: the gaps between requests, the disk's latency).
    private readonly PollWindow? _poll;
    private readonly PollWindow? _diskPoll;
    private bool _nonBlocking;

    /// <param name="pollMicroseconds">
    /// Above 0: this worker spins for its next request (non-blocking reads) and for its data file's direct I/O,
    /// up to an adaptive window of at most this long, before it sleeps. Only for a worker whose descriptor no
    /// other worker shares (O_NONBLOCK belongs to the open file).
    /// </param>
    public FuseWorker(FuseServer server, FuseRequestHandler handler, int fd, int maxWrite, int pollMicroseconds = 0)
    {
        if (pollMicroseconds > 0) { _poll = new PollWindow(pollMicroseconds); _diskPoll = new PollWindow(pollMicroseconds); }
        _server = server;
        _handler = handler;
        _fd = fd;
        // The kernel refuses reads into buffers smaller than header + write_in + max_write.
        _requestCapacity = WritePayloadOffset + maxWrite + Alignment;
        _replyCapacity = FuseOutHeader.EncodedSize + maxWrite + ReplySlack;
        _requestAllocation = (byte*)NativeMemory.AlignedAlloc((nuint)(_requestCapacity + Alignment), Alignment);
        _replyAllocation = (byte*)NativeMemory.AlignedAlloc((nuint)(_replyCapacity + Alignment), Alignment);
        _request = _requestAllocation + Alignment - WritePayloadOffset;
        _reply = _replyAllocation + Alignment - FuseOutHeader.EncodedSize;
    }

    private Span<byte> ReplyBody => new(_reply + FuseOutHeader.EncodedSize, _replyCapacity - FuseOutHeader.EncodedSize);

    /// <summary>Serves requests until the connection ends (unmount or abort).</summary>
    public void Run()
    {
        ProcessControl.MarkThreadAsIoFlusher();
        while (true)
        {
            nint n = _poll is null ? PosixFile.Read(_fd, _request, _requestCapacity) : PollRead();
            if (n < 0)
            {
                int errno = (int)-n;
                if (errno is Errno.EINTR or Errno.EAGAIN or Errno.ENOENT) continue; // ENOENT: request interrupted before we read it
                if (errno != Errno.ENODEV) _server.Log($"fuse: read from /dev/fuse failed: {Errno.Describe(errno)}");
                return; // ENODEV: unmounted or aborted
            }
            if (n < FuseInHeader.EncodedSize) continue;
            if (_poll is not null)
            {
                // The poller spins for its disk transfers too, unless the load is parallel: it then leaves the CPUs to it.
                FileIoBatch.PollOnThisThread(_server.LoadIsParallel ? null : _diskPoll);
                Serve(new ReadOnlySpan<byte>(_request, (int)n));
            }
            else if (_server.Polls)
            {
                _server.SleeperStarts();
                try { Serve(new ReadOnlySpan<byte>(_request, (int)n)); }
                finally { _server.SleeperEnds(); }
            }
            else Serve(new ReadOnlySpan<byte>(_request, (int)n));
        }
    }

    /// <summary>
    /// The next request, spinning on non-blocking reads for the poll window, then sleeping in a blocking read.
    /// A sleeping worker is one of many the kernel may wake for a request; a spinning one takes it first.
    /// </summary>
    private nint PollRead()
    {
        long start = Stopwatch.GetTimestamp(), window = _poll!.Ticks, missedBefore = _server.TakenBySleepers;
        nint n = -Errno.EAGAIN;
        // Under a parallel load (see LoadIsParallel) the kernel wakes sleepers for it, and a spin would take a CPU.
        if (window > 0 && !_server.LoadIsParallel && SetNonBlocking(true))
        {
            long until = start + window;
            // Each empty read yields: a thread woken on this CPU (the client, whose I/O just completed) runs at once.
            while ((n = PosixFile.Read(_fd, _request, _requestCapacity)) == -Errno.EAGAIN && Stopwatch.GetTimestamp() < until)
                Thread.Yield();
        }
        if (n == -Errno.EAGAIN)
        {
            if (!SetNonBlocking(false))
            {
                // Practically never (F_SETFL on our own descriptor). A read that cannot block would spin for ever:
                // this worker ends instead; the others go on serving.
                _server.Log("fuse: cannot make the polling worker's /dev/fuse descriptor blocking again; that worker stops");
                return -Errno.ENODEV;
            }
            n = PosixFile.Read(_fd, _request, _requestCapacity);
        }
        // Requests the sleeping workers took meanwhile came during this wait: the gaps between requests were that
        // much shorter than the wait (a poller that slept is the last the kernel wakes, so it misses many).
        long missed = _server.TakenBySleepers - missedBefore;
        _poll.Waited((Stopwatch.GetTimestamp() - start) / (1 + missed));
        return n;
    }

    private bool SetNonBlocking(bool on)
    {
        if (_nonBlocking == on) return true;
        if (Libc.SetNonBlocking(_fd, on) < 0) return false;
        _nonBlocking = on;
        return true;
    }

    private void Serve(ReadOnlySpan<byte> request)
    {
        var header = FuseInHeader.Read(request);
        int end = (int)Math.Min(header.Length, (uint)request.Length);
        var argument = request[FuseInHeader.EncodedSize..end];
        // A WRITE's data follows its fuse_write_in; nothing else here has a payload.
        var payload = header.Opcode == FuseOpcode.Write && argument.Length >= FuseWriteIn.EncodedSize ? argument[FuseWriteIn.EncodedSize..] : default;
        int result = _handler.Serve(header, argument, payload, ReplyBody);
        if (result == FuseRequestHandler.NoReply) return;
        if (result < 0) ReplyError(header.Unique, -result);
        else Reply(header.Unique, result);
        if (header.Opcode == FuseOpcode.Init)   // after the reply: the kernel counts the connection initialised once it has it
            _server.CompleteInit(result >= 0 ? FuseInitOut.Read(ReplyBody) : null);
    }

    private void Reply(ulong unique, int payloadLength)
    {
        int length = FuseOutHeader.EncodedSize + payloadLength;
        new FuseOutHeader((uint)length, 0, unique).Write(new Span<byte>(_reply, FuseOutHeader.EncodedSize));
        Send(length);
    }

    private void ReplyError(ulong unique, int errno)
    {
        new FuseOutHeader(FuseOutHeader.EncodedSize, -errno, unique).Write(new Span<byte>(_reply, FuseOutHeader.EncodedSize));
        Send(FuseOutHeader.EncodedSize);
    }

    private void Send(int length)
    {
        nint n = PosixFile.Write(_fd, _reply, length);
        // ENOENT: the request was interrupted and is gone; ENODEV: the connection ended meanwhile.
        if (n < 0 && -n != Errno.ENOENT && -n != Errno.ENODEV)
            _server.Log($"fuse: reply failed: {Errno.Describe((int)-n)}");
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_requestAllocation);
        NativeMemory.AlignedFree(_replyAllocation);
    }
}
