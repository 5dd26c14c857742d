using System.Buffers.Binary;
using System.Text;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// One request in flight and, once run, its reply as segments to send: small headers in <see cref="_headers"/>,
/// bulk data straight from the payload buffer. Pooled per connection; nothing here is allocated per request once warm.
/// </summary>
internal sealed class NbdWork(NbdConnection connection)
{
    public readonly record struct Segment(byte[] Array, int Offset, int Length);

    // Pinned, as the payloads are: segments go to sendmsg by address (NbdReplySender).
    private byte[] _headers = GC.AllocateUninitializedArray<byte>(4096, pinned: true);
    private int _headersUsed;

    public NbdConnection Connection { get; } = connection;
    public NbdRequest Request;
    /// <summary>The write payload or the read data; rented from the server's pool.</summary>
    public byte[]? Payload;
    /// <summary>Bytes counted against the connection's in-flight budget.</summary>
    public int Reserved;
    /// <summary>A write whose payload was over the limit: skipped, to be answered with an error.</summary>
    public bool PayloadDropped;
    /// <summary>Block status payloads (rented), returned with the work.</summary>
    public byte[]? Extra;
    public readonly List<Segment> Segments = new(8);

    public void Reset()
    {
        Request = default;
        Payload = null;
        Extra = null;
        Reserved = 0;
        PayloadDropped = false;
        Segments.Clear();
        _headersUsed = 0;
    }

    private Span<byte> Take(int length)
    {
        if (_headersUsed + length > _headers.Length)
        {
            // Segments still point into the old array, which stays alive through them: only new headers move.
            _headers = GC.AllocateUninitializedArray<byte>(Math.Max(_headers.Length * 2, length), pinned: true);
            _headersUsed = 0;
        }
        var span = _headers.AsSpan(_headersUsed, length);
        Segments.Add(new Segment(_headers, _headersUsed, length));
        _headersUsed += length;
        return span;
    }

    public void SimpleReply(NbdError error) => new NbdSimpleReply(error, Request.Cookie).Write(Take(NbdSimpleReply.EncodedSize));

    /// <summary>A simple reply carrying read data (only without structured replies).</summary>
    public void SimpleReadReply(int length)
    {
        SimpleReply(NbdError.None);
        if (length > 0) Segments.Add(new Segment(Payload!, 0, length));
    }

    public void DoneChunk() => new NbdChunkHeader(NbdReplyFlags.Done, NbdReplyChunkType.None, Request.Cookie, 0).Write(Take(NbdChunkHeader.EncodedSize));

    /// <summary>An OFFSET_DATA chunk of Payload[start..start+length) at disk offset.</summary>
    public void DataChunk(ulong offset, int start, int length, bool done)
    {
        var header = Take(NbdChunkHeader.EncodedSize + 8);
        new NbdChunkHeader(done ? NbdReplyFlags.Done : NbdReplyFlags.None, NbdReplyChunkType.OffsetData, Request.Cookie, (uint)length + 8).Write(header);
        BinaryPrimitives.WriteUInt64BigEndian(header[NbdChunkHeader.EncodedSize..], offset);
        Segments.Add(new Segment(Payload!, start, length));
    }

    public void HoleChunk(ulong offset, int length, bool done)
    {
        var chunk = Take(NbdChunkHeader.EncodedSize + 12);
        new NbdChunkHeader(done ? NbdReplyFlags.Done : NbdReplyFlags.None, NbdReplyChunkType.OffsetHole, Request.Cookie, 12).Write(chunk);
        BinaryPrimitives.WriteUInt64BigEndian(chunk[NbdChunkHeader.EncodedSize..], offset);
        BinaryPrimitives.WriteUInt32BigEndian(chunk[(NbdChunkHeader.EncodedSize + 8)..], (uint)length);
    }

    /// <summary>A BLOCK_STATUS chunk whose payload (context id and descriptors) is Extra[start..start+length).</summary>
    public void StatusChunk(int start, int length, bool done)
    {
        new NbdChunkHeader(done ? NbdReplyFlags.Done : NbdReplyFlags.None, NbdReplyChunkType.BlockStatus, Request.Cookie, (uint)length)
            .Write(Take(NbdChunkHeader.EncodedSize));
        Segments.Add(new Segment(Extra!, start, length));
    }

    /// <summary>The whole reply is this error: anything built so far is dropped.</summary>
    public void Fail(NbdError error, string message, bool structured)
    {
        Segments.Clear();
        _headersUsed = 0;
        if (!structured)
        {
            SimpleReply(error);
            return;
        }
        if (message.Length > 256) message = message[..256];   // at most 768 UTF-8 bytes: fits the space taken below
        var chunk = Take(NbdChunkHeader.EncodedSize + 6 + 1024);
        var text = chunk[(NbdChunkHeader.EncodedSize + 6)..];
        int length = Encoding.UTF8.GetBytes(message, text);
        new NbdChunkHeader(NbdReplyFlags.Done, NbdReplyChunkType.Error, Request.Cookie, (uint)(6 + length)).Write(chunk);
        BinaryPrimitives.WriteUInt32BigEndian(chunk[NbdChunkHeader.EncodedSize..], (uint)error);
        BinaryPrimitives.WriteUInt16BigEndian(chunk[(NbdChunkHeader.EncodedSize + 4)..], (ushort)length);
        Segments[^1] = Segments[^1] with { Length = NbdChunkHeader.EncodedSize + 6 + length };
    }
}
