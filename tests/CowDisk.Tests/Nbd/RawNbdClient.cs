using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using CowDisk.Format.Nbd;
using Xunit.Sdk;

namespace CowDisk.Tests.Nbd;

/// <summary>One reply the server sent to an option during haggling.</summary>
public sealed record OptionReply(NbdOption Option, NbdOptionReplyType Type, byte[] Data)
{
    public bool IsError => ((uint)Type & 0x8000_0000u) != 0;
    public bool IsFinal => Type == NbdOptionReplyType.Ack || IsError;
    public string Text => Encoding.UTF8.GetString(Data);
    public NbdInfoType InfoType => (NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(Data);
    public override string ToString() => $"{Option}/{Type}({Data.Length} bytes{(IsError ? $": '{Text}'" : "")})";
}

/// <summary>One chunk of a structured reply; the accessors decode the payload of the chunk types that carry one.</summary>
public sealed record ReplyChunk(NbdReplyFlags Flags, NbdReplyChunkType Type, byte[] Payload)
{
    public bool Done => (Flags & NbdReplyFlags.Done) != 0;
    public bool IsError => ((ushort)Type & 0x8000) != 0;
    /// <summary>OFFSET_DATA / OFFSET_HOLE: the disk offset the chunk starts at.</summary>
    public ulong Offset => BinaryPrimitives.ReadUInt64BigEndian(Payload);
    /// <summary>The bytes of disk the content chunk describes.</summary>
    public long ContentLength => Type switch
    {
        NbdReplyChunkType.OffsetData => Payload.Length - 8,
        NbdReplyChunkType.OffsetHole => BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(8)),
        _ => throw new XunitException($"a {Type} chunk describes no content"),
    };
    public ReadOnlySpan<byte> Data => Payload.AsSpan(8);
    public NbdError Error => (NbdError)BinaryPrimitives.ReadUInt32BigEndian(Payload);
    public string Message => Encoding.UTF8.GetString(Payload, 6, BinaryPrimitives.ReadUInt16BigEndian(Payload.AsSpan(4)));
    public uint ContextId => BinaryPrimitives.ReadUInt32BigEndian(Payload);

    /// <summary>BLOCK_STATUS: the (length, status) descriptors after the context id.</summary>
    public List<(uint Length, uint Flags)> Descriptors
    {
        get
        {
            if ((Payload.Length - 4) % 8 != 0) throw new XunitException($"a block status chunk of {Payload.Length} bytes is not a context id and whole descriptors");
            var list = new List<(uint, uint)>();
            for (int at = 4; at < Payload.Length; at += 8)
                list.Add((BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(at)), BinaryPrimitives.ReadUInt32BigEndian(Payload.AsSpan(at + 4))));
            return list;
        }
    }

    public override string ToString() => Type switch
    {
        NbdReplyChunkType.OffsetData or NbdReplyChunkType.OffsetHole => $"{Type}@{Offset}+{ContentLength}{(Done ? " done" : "")}",
        NbdReplyChunkType.Error or NbdReplyChunkType.ErrorOffset => $"{Type} {Error} '{Message}'{(Done ? " done" : "")}",
        _ => $"{Type}({Payload.Length} bytes){(Done ? " done" : "")}",
    };
}

/// <summary>A whole reply to one request: a simple reply (with read data) or every chunk of a structured one.</summary>
public sealed class NbdReply
{
    public required ulong Cookie { get; init; }
    public required bool Structured { get; init; }
    /// <summary>The simple reply's error, or the first error chunk's.</summary>
    public NbdError Error { get; set; }
    /// <summary>A successful simple READ's data.</summary>
    public byte[]? Data { get; set; }
    public List<ReplyChunk> Chunks { get; } = [];

    public override string ToString() => Structured
        ? $"structured reply {Cookie:x}: [{string.Join(", ", Chunks)}]"
        : $"simple reply {Cookie:x}: {Error}{(Data is null ? "" : $" + {Data.Length} data bytes")}";
}

/// <summary>
/// A minimal synchronous NBD client over a Unix socket, built on the wire records: it does exactly what the test
/// tells it, including sending what a well-behaved client never would. Every wait is bounded by the socket's
/// timeouts and turns into a test failure naming what was awaited.
/// </summary>
public sealed class RawNbdClient : IDisposable
{
    public static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(30);
    private const int MaxOptionReplyData = 1 << 20;

    private readonly Dictionary<ulong, uint> _pendingReads = [];   // simple replies carry data only for READs
    private readonly Dictionary<ulong, NbdReply> _partial = [];

    public Socket Socket { get; }
    public bool Structured { get; private set; }
    public ulong ExportSize { get; private set; }
    public NbdTransmissionFlags TransmissionFlags { get; private set; }
    /// <summary>Contexts the last SET_META_CONTEXT selected: name → id.</summary>
    public Dictionary<string, uint> Contexts { get; } = [];

    private RawNbdClient(Socket socket) => Socket = socket;

    public static RawNbdClient Connect(string socketPath, TimeSpan? wait = null)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            socket.ReceiveTimeout = socket.SendTimeout = (int)(wait ?? DefaultWait).TotalMilliseconds;
            return new RawNbdClient(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Connects, shakes hands, optionally negotiates structured replies and contexts, then OPT_GO.</summary>
    public static RawNbdClient Open(string socketPath, string export = "", bool structured = true, params string[] contexts)
    {
        var client = Connect(socketPath);
        try
        {
            client.Handshake();
            if (structured) client.NegotiateStructuredReplies();
            if (contexts.Length > 0)
            {
                var replies = client.SetMetaContext(export, contexts);
                if (replies[^1].IsError) throw new XunitException($"SET_META_CONTEXT failed: {string.Join(", ", replies)}");
            }
            var go = client.Go(export);
            if (go[^1].Type != NbdOptionReplyType.Ack) throw new XunitException($"OPT_GO '{export}' failed: {string.Join(", ", go)}");
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public void Dispose() => Socket.Dispose();

    // ---- raw bytes ----

    public void SendRaw(ReadOnlySpan<byte> bytes)
    {
        try { Socket.Send(bytes); }
        catch (SocketException e) { throw new XunitException($"sending {bytes.Length} bytes failed: {e.SocketErrorCode} ({e.Message})"); }
    }

    public byte[] ReadExactly(int count, string what)
    {
        var buffer = new byte[count];
        ReadExactly(buffer, what);
        return buffer;
    }

    public void ReadExactly(Span<byte> buffer, string what)
    {
        int got = 0;
        while (got < buffer.Length)
        {
            int n;
            try { n = Socket.Receive(buffer[got..]); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new XunitException($"waiting for {what}: nothing from the server within {Socket.ReceiveTimeout} ms ({got} of {buffer.Length} bytes came)");
            }
            catch (SocketException e)
            {
                throw new XunitException($"waiting for {what}: the connection failed ({e.SocketErrorCode}) after {got} of {buffer.Length} bytes");
            }
            if (n == 0) throw new XunitException($"waiting for {what}: the server closed the connection after {got} of {buffer.Length} bytes");
            got += n;
        }
    }

    /// <summary>
    /// Asserts the server closes the connection without sending anything more (EOF or a reset), within the wait.
    /// </summary>
    public void ExpectClosed(string why, TimeSpan? wait = null)
    {
        int old = Socket.ReceiveTimeout;
        Socket.ReceiveTimeout = (int)(wait ?? TimeSpan.FromSeconds(20)).TotalMilliseconds;
        try
        {
            var buffer = new byte[256];
            int n;
            try { n = Socket.Receive(buffer); }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown)
            {
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock)
            {
                throw new XunitException($"{why}: expected the server to close the connection, but it is still open after {Socket.ReceiveTimeout} ms");
            }
            if (n > 0)
                throw new XunitException($"{why}: expected the server to close the connection, but it sent {n} bytes: {Convert.ToHexString(buffer, 0, n)}");
        }
        finally
        {
            try { Socket.ReceiveTimeout = old; } catch (ObjectDisposedException) { }
        }
    }

    // ---- handshake and options ----

    /// <summary>Reads the 18-byte greeting, checks both magics and returns the server's handshake flags.</summary>
    public NbdHandshakeFlags ReadGreeting()
    {
        var greeting = ReadExactly(18, "the server greeting");
        ulong magic = BinaryPrimitives.ReadUInt64BigEndian(greeting);
        ulong option = BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8));
        if (magic != NbdMagic.Server || option != NbdMagic.Option)
            throw new XunitException($"bad greeting {Convert.ToHexString(greeting)}");
        return (NbdHandshakeFlags)BinaryPrimitives.ReadUInt16BigEndian(greeting.AsSpan(16));
    }

    public void SendClientFlags(uint flags)
    {
        Span<byte> bytes = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, flags);
        SendRaw(bytes);
    }

    public void Handshake(NbdClientFlags flags = NbdClientFlags.FixedNewstyle | NbdClientFlags.NoZeroes)
    {
        var server = ReadGreeting();
        if ((server & NbdHandshakeFlags.FixedNewstyle) == 0) throw new XunitException($"server flags {server} lack FIXED_NEWSTYLE");
        SendClientFlags((uint)flags);
    }

    public void SendOption(NbdOption option, ReadOnlySpan<byte> data = default) =>
        SendOptionRaw(NbdMagic.Option, option, (uint)data.Length, data);

    /// <summary>An option header with any magic and any length, followed by whatever data is given (not necessarily Length bytes).</summary>
    public void SendOptionRaw(ulong magic, NbdOption option, uint length, ReadOnlySpan<byte> data = default)
    {
        var message = new byte[NbdOptionHeader.EncodedSize + data.Length];
        new NbdOptionHeader(magic, option, length).Write(message);
        data.CopyTo(message.AsSpan(NbdOptionHeader.EncodedSize));
        SendRaw(message);
    }

    public OptionReply ReadOptionReply()
    {
        var header = NbdOptionReplyHeader.Read(ReadExactly(NbdOptionReplyHeader.EncodedSize, "an option reply header"), out ulong magic);
        if (magic != NbdMagic.OptionReply) throw new XunitException($"option reply magic 0x{magic:x} (expected 0x{NbdMagic.OptionReply:x})");
        if (header.Length > MaxOptionReplyData) throw new XunitException($"option reply {header} claims {header.Length} bytes of data");
        var data = ReadExactly((int)header.Length, $"the {header.Length} data bytes of option reply {header.Type}");
        return new OptionReply(header.Option, header.Type, data);
    }

    /// <summary>Every reply to one option, up to and including its ACK or error; each must name that option.</summary>
    public List<OptionReply> ReadOptionReplies(NbdOption option)
    {
        var replies = new List<OptionReply>();
        while (true)
        {
            var reply = ReadOptionReply();
            if (reply.Option != option) throw new XunitException($"a reply for option {reply.Option} while waiting for replies to {option}: {reply}");
            replies.Add(reply);
            if (reply.IsFinal) return replies;
            if (replies.Count > 10_000) throw new XunitException($"more than 10000 replies to {option}");
        }
    }

    public List<OptionReply> Option(NbdOption option, ReadOnlySpan<byte> data = default)
    {
        SendOption(option, data);
        return ReadOptionReplies(option);
    }

    public void NegotiateStructuredReplies()
    {
        var replies = Option(NbdOption.StructuredReply);
        if (replies is not [{ Type: NbdOptionReplyType.Ack, Data.Length: 0 }])
            throw new XunitException($"NBD_OPT_STRUCTURED_REPLY: {string.Join(", ", replies)}");
        Structured = true;
    }

    /// <summary>OPT_SET_META_CONTEXT; the contexts the server selected are remembered in <see cref="Contexts"/>.</summary>
    public List<OptionReply> SetMetaContext(string export, params string[] queries)
    {
        var replies = Option(NbdOption.SetMetaContext, MetaContextData(export, queries));
        Contexts.Clear();
        foreach (var reply in replies.Where(r => r.Type == NbdOptionReplyType.MetaContext))
            Contexts[Encoding.UTF8.GetString(reply.Data, 4, reply.Data.Length - 4)] = BinaryPrimitives.ReadUInt32BigEndian(reply.Data);
        return replies;
    }

    /// <summary>OPT_INFO: the replies, the session stays in haggling.</summary>
    public List<OptionReply> Info(string export, params NbdInfoType[] infos) => Option(NbdOption.Info, InfoRequestData(export, infos));

    /// <summary>OPT_GO: on ACK the client is in transmission with the export's size and flags taken from NBD_INFO_EXPORT.</summary>
    public List<OptionReply> Go(string export, params NbdInfoType[] infos)
    {
        var replies = Option(NbdOption.Go, InfoRequestData(export, infos));
        if (replies[^1].Type == NbdOptionReplyType.Ack)
        {
            var info = replies.FirstOrDefault(r => r.Type == NbdOptionReplyType.Info && r.InfoType == NbdInfoType.Export)
                ?? throw new XunitException($"OPT_GO acknowledged without NBD_INFO_EXPORT: {string.Join(", ", replies)}");
            if (info.Data.Length != 12) throw new XunitException($"NBD_INFO_EXPORT of {info.Data.Length} bytes (expected 12)");
            ExportSize = BinaryPrimitives.ReadUInt64BigEndian(info.Data.AsSpan(2));
            TransmissionFlags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(info.Data.AsSpan(10));
        }
        return replies;
    }

    public static byte[] InfoRequestData(string export, params NbdInfoType[] infos)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        var data = new byte[4 + name.Length + 2 + 2 * infos.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + name.Length), (ushort)infos.Length);
        for (int i = 0; i < infos.Length; i++) BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + name.Length + 2 * i), (ushort)infos[i]);
        return data;
    }

    public static byte[] MetaContextData(string export, params string[] queries)
    {
        var stream = new MemoryStream();
        var number = new byte[4];
        void Put(uint value) { BinaryPrimitives.WriteUInt32BigEndian(number, value); stream.Write(number); }
        byte[] name = Encoding.UTF8.GetBytes(export);
        Put((uint)name.Length);
        stream.Write(name);
        Put((uint)queries.Length);
        foreach (string query in queries)
        {
            byte[] text = Encoding.UTF8.GetBytes(query);
            Put((uint)text.Length);
            stream.Write(text);
        }
        return stream.ToArray();
    }

    // ---- transmission ----

    /// <summary>A request header with any field values, then the payload given (which need not be Length bytes).</summary>
    public void SendRequest(NbdCommand command, ulong cookie, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None,
        ReadOnlySpan<byte> payload = default, uint magic = NbdMagic.Request)
    {
        var message = new byte[NbdRequest.EncodedSize + payload.Length];
        new NbdRequest(magic, flags, command, cookie, offset, length).Write(message);
        payload.CopyTo(message.AsSpan(NbdRequest.EncodedSize));
        if (command == NbdCommand.Read) _pendingReads[cookie] = length;
        SendRaw(message);
    }

    /// <summary>Many request headers (no payloads) in one send, as a client pipelining reads would.</summary>
    public void SendRequests(IEnumerable<NbdRequest> requests)
    {
        var all = requests.ToList();
        var message = new byte[all.Count * NbdRequest.EncodedSize];
        for (int i = 0; i < all.Count; i++)
        {
            if (all[i].Command == NbdCommand.Write && all[i].Length > 0) throw new ArgumentException("a batch of headers carries no write payloads");
            all[i].Write(message.AsSpan(i * NbdRequest.EncodedSize));
            if (all[i].Command == NbdCommand.Read) _pendingReads[all[i].Cookie] = all[i].Length;
        }
        SendRaw(message);
    }

    /// <summary>Reads replies until one is complete (chunks of other cookies are kept for later calls) and returns it.</summary>
    public NbdReply ReadReply()
    {
        while (true)
        {
            var head = ReadExactly(4, "a reply magic");
            uint magic = BinaryPrimitives.ReadUInt32BigEndian(head);
            if (magic == NbdMagic.SimpleReply)
            {
                var rest = ReadExactly(NbdSimpleReply.EncodedSize - 4, "a simple reply");
                var whole = new byte[NbdSimpleReply.EncodedSize];
                head.CopyTo(whole, 0);
                rest.CopyTo(whole, 4);
                var simple = NbdSimpleReply.Read(whole, out _);
                if (_partial.ContainsKey(simple.Cookie)) throw new XunitException($"a simple reply for cookie {simple.Cookie:x} in the middle of its structured reply");
                var reply = new NbdReply { Cookie = simple.Cookie, Structured = false, Error = simple.Error };
                if (_pendingReads.Remove(simple.Cookie, out uint length) && simple.Error == NbdError.None)
                    reply.Data = ReadExactly((int)length, $"the {length} data bytes of READ {simple.Cookie:x}");
                return reply;
            }
            if (magic != NbdMagic.StructuredReply) throw new XunitException($"reply magic 0x{magic:x8} is neither simple nor structured");
            var chunkRest = ReadExactly(NbdChunkHeader.EncodedSize - 4, "a structured reply chunk header");
            var headerBytes = new byte[NbdChunkHeader.EncodedSize];
            head.CopyTo(headerBytes, 0);
            chunkRest.CopyTo(headerBytes, 4);
            var header = NbdChunkHeader.Read(headerBytes, out _);
            if (!Structured) throw new XunitException($"a structured reply chunk ({header.Type}) although structured replies were not negotiated");
            if (header.Length > NbdLimits.MaxPayload + 4096) throw new XunitException($"chunk {header.Type} claims {header.Length} bytes");
            var payload = ReadExactly((int)header.Length, $"the {header.Length} bytes of a {header.Type} chunk");
            if (!_partial.TryGetValue(header.Cookie, out var partial))
                _partial[header.Cookie] = partial = new NbdReply { Cookie = header.Cookie, Structured = true };
            var chunk = new ReplyChunk(header.Flags, header.Type, payload);
            partial.Chunks.Add(chunk);
            if (chunk.IsError && partial.Error == NbdError.None) partial.Error = chunk.Error;
            if (chunk.Done)
            {
                _partial.Remove(header.Cookie);
                _pendingReads.Remove(header.Cookie);
                return partial;
            }
        }
    }

    /// <summary>Sends one request and reads its reply, which must carry the request's cookie.</summary>
    public NbdReply Request(NbdCommand command, ulong cookie, ulong offset, uint length, NbdCommandFlags flags = NbdCommandFlags.None,
        ReadOnlySpan<byte> payload = default)
    {
        SendRequest(command, cookie, offset, length, flags, payload);
        var reply = ReadReply();
        if (reply.Cookie != cookie) throw new XunitException($"sent cookie {cookie:x}, got a reply for {reply.Cookie:x}: {reply}");
        return reply;
    }

    private ulong _nextCookie = 0x1000;

    public NbdReply Write(long offset, ReadOnlySpan<byte> data, NbdCommandFlags flags = NbdCommandFlags.None) =>
        Request(NbdCommand.Write, _nextCookie++, (ulong)offset, (uint)data.Length, flags, data);

    /// <summary>Writes and asserts success.</summary>
    public void WriteOk(long offset, ReadOnlySpan<byte> data)
    {
        var reply = Write(offset, data);
        if (reply.Error != NbdError.None) throw new XunitException($"WRITE at {offset}+{data.Length} failed: {reply}");
    }

    public NbdReply Read(long offset, int length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        Request(NbdCommand.Read, _nextCookie++, (ulong)offset, (uint)length, flags);

    /// <summary>Reads and asserts success; the data reassembled from the reply (checked to cover the range exactly).</summary>
    public byte[] ReadOk(long offset, int length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        Assemble(Read(offset, length, flags), offset, length);

    public NbdReply Command(NbdCommand command, long offset, long length, NbdCommandFlags flags = NbdCommandFlags.None) =>
        Request(command, _nextCookie++, (ulong)offset, (uint)length, flags);

    /// <summary>
    /// The data of a successful READ reply. For a structured reply every content chunk must lie inside the request,
    /// not overlap another, and together they must cover it exactly; DONE only on the last chunk.
    /// </summary>
    public static byte[] Assemble(NbdReply reply, long offset, int length)
    {
        if (reply.Error != NbdError.None) throw new XunitException($"READ at {offset}+{length} failed: {reply}");
        if (!reply.Structured)
        {
            if (reply.Data is null || reply.Data.Length != length) throw new XunitException($"READ at {offset}+{length}: {reply}");
            return reply.Data;
        }
        var data = new byte[length];
        var covered = new bool[length];
        for (int i = 0; i < reply.Chunks.Count; i++)
        {
            var chunk = reply.Chunks[i];
            if (chunk.Done != (i == reply.Chunks.Count - 1)) throw new XunitException($"READ at {offset}+{length}: DONE not exactly on the last chunk: {reply}");
            if (chunk.Type == NbdReplyChunkType.None)
            {
                if (chunk.Payload.Length != 0 || !chunk.Done) throw new XunitException($"READ at {offset}+{length}: bad NONE chunk: {reply}");
                continue;
            }
            if (chunk.Type is not (NbdReplyChunkType.OffsetData or NbdReplyChunkType.OffsetHole))
                throw new XunitException($"READ at {offset}+{length}: unexpected chunk {chunk}: {reply}");
            long start = (long)chunk.Offset - offset, count = chunk.ContentLength;
            if (count <= 0 || start < 0 || start + count > length)
                throw new XunitException($"READ at {offset}+{length}: chunk {chunk} is empty or outside the request: {reply}");
            for (long b = start; b < start + count; b++)
            {
                if (covered[b]) throw new XunitException($"READ at {offset}+{length}: chunk {chunk} overlaps another at byte {offset + b}: {reply}");
                covered[b] = true;
            }
            if (chunk.Type == NbdReplyChunkType.OffsetData) chunk.Data.CopyTo(data.AsSpan((int)start));
        }
        int gap = Array.IndexOf(covered, false);
        if (gap >= 0) throw new XunitException($"READ at {offset}+{length}: byte {offset + gap} is in no chunk: {reply}");
        return data;
    }
}
