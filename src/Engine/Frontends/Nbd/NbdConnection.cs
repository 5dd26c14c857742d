using System.Net.Sockets;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// One client. A reader thread does the handshake and then reads requests, handing each to the server's
/// workers; a writer thread sends the replies in the order they complete (out of request order). The bytes and
/// requests in flight are bounded: when they are used up the reader stops reading, so a client that never
/// reads its replies stalls only itself, and is dropped once a reply has waited <see cref="NbdServerOptions.SendTimeout"/>.
/// </summary>
internal sealed class NbdConnection
{
    private readonly Socket _socket;
    private readonly NbdServerOptions _options;
    private readonly object _gate = new();
    private readonly Queue<NbdWork> _replies = new();
    private readonly Stack<NbdWork> _spare = new();
    private int _requestsInFlight;
    private long _bytesInFlight;
    private bool _readerDone;
    private volatile bool _broken;
    private NbdAgreement? _agreement;
    private Thread? _writer;

    public NbdServer Server { get; }
    public string Peer { get; }
    public Thread Reader { get; }

    public NbdConnection(NbdServer server, Socket socket, NbdServerOptions options, string peer)
    {
        Server = server;
        _socket = socket;
        _options = options;
        Peer = peer;
        Reader = new Thread(ReadLoop) { IsBackground = true, Name = "nbd reader" };
    }

    public void Start() => Reader.Start();

    /// <summary>Stops reading new requests; those in flight are answered, then the connection closes.</summary>
    public void StopReading()
    {
        try { _socket.Shutdown(SocketShutdown.Receive); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    /// <summary>Drops the connection now: blocked reads and writes fail.</summary>
    public void Abort()
    {
        _broken = true;
        try { _socket.Shutdown(SocketShutdown.Both); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        lock (_gate) Monitor.PulseAll(_gate);
    }

    private void ReadLoop()
    {
        Stream? stream = null;
        try
        {
            _socket.ReceiveTimeout = (int)_options.HandshakeTimeout.TotalMilliseconds;
            _socket.SendTimeout = (int)_options.SendTimeout.TotalMilliseconds;
            var agreement = new NbdNegotiation(_options, new NetworkStream(_socket, ownsSocket: false), Peer).Run();
            if (agreement is null) return;
            stream = agreement.Stream;
            _socket.ReceiveTimeout = 0;   // an idle client is fine once connected
            _agreement = agreement;
            _writer = new Thread(WriteLoop) { IsBackground = true, Name = "nbd writer" };
            _writer.Start();
            Transmit(new BufferedStream(stream, 64 << 10));
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or EndOfStreamException or InvalidOperationException)
        {
            if (!_broken) _options.Log($"nbd: {Peer}: {e.Message}");
        }
        finally
        {
            lock (_gate)
            {
                _readerDone = true;
                Monitor.PulseAll(_gate);
            }
            _writer?.Join();   // every request in flight answered (or dropped with a broken connection)
            try { stream?.Dispose(); } catch (Exception e) when (e is IOException or SocketException) { }
            _socket.Dispose();
            Server.Forget(this);
        }
    }

    private void Transmit(Stream input)
    {
        var header = new byte[NbdRequest.EncodedSize];
        var skip = new byte[64 << 10];
        while (!_broken)
        {
            if (!ReadFully(input, header)) return;   // the client went away between requests
            var request = NbdRequest.Read(header);
            if (request.Magic != NbdMagic.Request)
            {
                _options.Log($"nbd: {Peer}: bad request magic 0x{request.Magic:x8}; closing");
                return;
            }
            if (request.Command == NbdCommand.Disconnect) return;
            bool write = request.Command == NbdCommand.Write;
            bool dropped = write && request.Length > NbdLimits.MaxPayload;
            if (dropped)
            {
                // Read past the payload in small pieces: memory stays bounded whatever length the client claims.
                for (long left = request.Length; left > 0;)
                {
                    int n = (int)Math.Min(left, skip.Length);
                    if (!ReadFully(input, skip.AsSpan(0, n))) return;
                    left -= n;
                }
            }
            int bytes = dropped ? 0
                : write || (request.Command == NbdCommand.Read && request.Length <= NbdLimits.MaxPayload) ? (int)request.Length : 0;
            if (!Reserve(bytes)) return;
            var work = Rent();
            work.Request = request;
            work.PayloadDropped = dropped;
            work.Reserved = bytes;
            if (bytes > 0) work.Payload = Server.Buffers.Rent(bytes);
            if (write && !dropped && !ReadFully(input, work.Payload.AsSpan(0, bytes)))
            {
                Release(work);   // cut off mid-payload: never acknowledged, never written
                return;
            }
            Server.Workers.Enqueue(work);
        }
    }

    private static bool ReadFully(Stream input, Span<byte> buffer)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n = input.Read(buffer[got..]);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }

    /// <summary>Waits for room in the in-flight budget; false once the connection is broken.</summary>
    private bool Reserve(int bytes)
    {
        lock (_gate)
        {
            // One request is always let through, however large, so a single 32 MiB write cannot deadlock.
            while (!_broken && (_requestsInFlight >= _options.MaxRequestsInFlight ||
                                (_requestsInFlight > 0 && _bytesInFlight + bytes > _options.MaxBytesInFlight)))
                Monitor.Wait(_gate);
            if (_broken) return false;
            _requestsInFlight++;
            _bytesInFlight += bytes;
            return true;
        }
    }

    private NbdWork Rent()
    {
        lock (_gate) return _spare.Count > 0 ? _spare.Pop() : new NbdWork(this);
    }

    private void Release(NbdWork work)
    {
        if (work.Payload is { } payload) Server.Buffers.Return(payload);
        if (work.Extra is { } extra) Server.Buffers.Return(extra);
        lock (_gate)
        {
            _requestsInFlight--;
            _bytesInFlight -= work.Reserved;
            work.Reset();
            _spare.Push(work);
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Runs on a worker thread: executes the request and queues its reply for the writer.</summary>
    public void Execute(NbdWork work)
    {
        try { NbdCommands.Run(work, _agreement!); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug or an engine failure: that request fails, the server and its other clients go on.
            _options.Log($"nbd: {Peer}: {work.Request.Command} at {work.Request.Offset} failed: {e.Message}");
            work.Fail(NbdError.Io, e.Message, _agreement!.Structured);
        }
        lock (_gate)
        {
            _replies.Enqueue(work);
            Monitor.PulseAll(_gate);
        }
    }

    private void WriteLoop()
    {
        var stream = _agreement!.Stream;
        // A plain socket gets every reply ready in one sendmsg; TLS goes through the stream, gathered by a copy.
        var sender = stream is NetworkStream ? new NbdReplySender(_socket) : null;
        var output = sender is null ? new ReplyWriter(stream) : null;
        var batch = new List<NbdWork>();
        while (true)
        {
            lock (_gate)
            {
                while (_replies.Count == 0 && !(_readerDone && _requestsInFlight == 0))
                    Monitor.Wait(_gate);
                if (_replies.Count == 0) break;
                int segments = 0;
                while (_replies.TryPeek(out var next) && (batch.Count == 0 || segments + next.Segments.Count <= NbdReplySender.MaxSegments))
                {
                    segments += next.Segments.Count;
                    batch.Add(_replies.Dequeue());
                }
            }
            if (!_broken)
            {
                try
                {
                    if (sender is not null) Send(sender, batch);
                    else
                    {
                        foreach (var work in batch)
                            foreach (var segment in work.Segments) output!.Write(segment.Array, segment.Offset, segment.Length);
                        output!.Flush();
                    }
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
                {
                    if (!_broken) _options.Log($"nbd: {Peer}: sending a reply failed ({e.Message}); dropping the connection");
                    Abort();
                }
            }
            foreach (var work in batch) Release(work);
            batch.Clear();
        }
    }

    private static void Send(NbdReplySender sender, List<NbdWork> batch)
    {
        foreach (var work in batch)
            foreach (var segment in work.Segments)
                if (!sender.Add(segment.Array, segment.Offset, segment.Length))
                {
                    sender.Send();   // a reply of over 1,024 segments (many contexts): in several calls
                    sender.Add(segment.Array, segment.Offset, segment.Length);
                }
        sender.Send();
    }

    /// <summary>Gathers small reply pieces into one send; large data goes straight through.</summary>
    private sealed class ReplyWriter(Stream stream)
    {
        private readonly byte[] _staging = new byte[128 << 10];
        private int _used;

        public void Write(byte[] array, int offset, int length)
        {
            if (length == 0) return;
            if (length > _staging.Length / 2)
            {
                Flush(final: false);
                stream.Write(array, offset, length);
                return;
            }
            if (_used + length > _staging.Length) Flush(final: false);
            Buffer.BlockCopy(array, offset, _staging, _used, length);
            _used += length;
        }

        public void Flush(bool final = true)
        {
            if (_used > 0) stream.Write(_staging, 0, _used);
            _used = 0;
            if (final) stream.Flush();
        }
    }
}
