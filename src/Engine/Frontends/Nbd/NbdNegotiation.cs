using System.Buffers.Binary;
using System.Net.Security;
using System.Security.Authentication;
using System.Text;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>What option haggling settled: the export and the connection's protocol state.</summary>
internal sealed class NbdAgreement
{
    public required NbdExport Export { get; init; }
    public required Stream Stream { get; init; }
    public required bool Structured { get; init; }
    public required IReadOnlyList<NbdMetaContext> Contexts { get; init; }
    public required NbdTransmissionFlags Flags { get; init; }
}

/// <summary>
/// The fixed-newstyle handshake and option haggling, server side. Ends in an agreement (the client chose an
/// export) or null (the client aborted or broke the protocol; the caller closes the connection).
/// </summary>
internal sealed class NbdNegotiation(NbdServerOptions options, Stream stream, string peer)
{
    private const NbdHandshakeFlags ServerFlags = NbdHandshakeFlags.FixedNewstyle | NbdHandshakeFlags.NoZeroes;
    public const int MinimumBlockSize = 1;
    public const int PreferredBlockSize = 4096;

    private Stream _stream = stream;
    private bool _tls;
    private bool _structured;
    private bool _noZeroes;
    private string? _contextsExport;          // the export the last SET_META_CONTEXT named
    private List<NbdMetaContext> _contexts = [];

    public NbdAgreement? Run()
    {
        Span<byte> greeting = stackalloc byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdMagic.Server);
        BinaryPrimitives.WriteUInt64BigEndian(greeting[8..], NbdMagic.Option);
        BinaryPrimitives.WriteUInt16BigEndian(greeting[16..], (ushort)ServerFlags);
        _stream.Write(greeting);
        _stream.Flush();
        Span<byte> clientFlags = stackalloc byte[4];
        _stream.ReadExactly(clientFlags);
        var flags = (NbdClientFlags)BinaryPrimitives.ReadUInt32BigEndian(clientFlags);
        if ((flags & ~NbdClientFlags.Known) != 0) return Refuse($"unknown client flags 0x{(uint)flags:x}");
        _noZeroes = (flags & NbdClientFlags.NoZeroes) != 0;

        var header = new byte[NbdOptionHeader.EncodedSize];
        while (true)
        {
            _stream.ReadExactly(header);
            var option = NbdOptionHeader.Read(header);
            if (option.Magic != NbdMagic.Option) return Refuse("bad option magic");
            if (option.Length > NbdLimits.MaxOptionData) return Refuse($"option {option.Option} with {option.Length} bytes of data");
            var data = new byte[option.Length];
            _stream.ReadExactly(data);

            if (options.RequireTls && !_tls && option.Option is not (NbdOption.StartTls or NbdOption.Abort))
            {
                if (option.Option == NbdOption.ExportName) return Refuse("NBD_OPT_EXPORT_NAME before TLS");
                Reply(option.Option, NbdOptionReplyType.ErrorTlsRequired, "this server requires TLS (NBD_OPT_STARTTLS) first");
                continue;
            }
            switch (option.Option)
            {
                case NbdOption.Abort:
                    TryReply(option.Option, NbdOptionReplyType.Ack);
                    return null;
                case NbdOption.ExportName:
                    return ExportName(data);
                case NbdOption.List:
                    List(data);
                    break;
                case NbdOption.StartTls:
                    if (!StartTls(data)) return null;
                    break;
                case NbdOption.Info:
                case NbdOption.Go:
                    if (InfoOrGo(option.Option, data) is { } agreement) return agreement;
                    break;
                case NbdOption.StructuredReply:
                    if (data.Length != 0) Reply(option.Option, NbdOptionReplyType.ErrorInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
                    else
                    {
                        _structured = true;
                        Reply(option.Option, NbdOptionReplyType.Ack);
                    }
                    break;
                case NbdOption.ListMetaContext:
                case NbdOption.SetMetaContext:
                    MetaContext(option.Option, data);
                    break;
                default:
                    Reply(option.Option, NbdOptionReplyType.ErrorUnsupported, $"option {(uint)option.Option} is not supported");
                    break;
            }
        }
    }

    private NbdAgreement? Refuse(string why)
    {
        options.Log($"nbd: {peer}: {why}; closing");
        return null;
    }

    private NbdExport? Find(string name) =>
        name.Length == 0 ? options.Exports[0] : options.Exports.FirstOrDefault(e => e.Name == name);

    private NbdTransmissionFlags FlagsFor(NbdExport export)
    {
        var flags = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendCache
            // One device behind every connection: a flush on any of them covers the writes of all.
            | NbdTransmissionFlags.CanMultiConn;
        if (_structured) flags |= NbdTransmissionFlags.SendDf;
        if (export.IsReadOnly) flags |= NbdTransmissionFlags.ReadOnly;
        else flags |= NbdTransmissionFlags.SendFua | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero;
        return flags;
    }

    private NbdAgreement Agree(NbdExport export) => new()
    {
        Export = export, Stream = _stream, Structured = _structured, Flags = FlagsFor(export),
        // Contexts count only if they were chosen for this export (the protocol's rule for BLOCK_STATUS).
        Contexts = _contextsExport is not null && Find(_contextsExport) == export ? _contexts : [],
    };

    private NbdAgreement? ExportName(byte[] data)
    {
        string name = Encoding.UTF8.GetString(data);
        if (data.Length > NbdLimits.MaxString || Find(name) is not { } export) return Refuse($"NBD_OPT_EXPORT_NAME for unknown export '{Printable(name)}'");
        var agreement = Agree(export);
        var reply = new byte[10 + (_noZeroes ? 0 : NbdLimits.ExportNamePadding)];
        BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), (ushort)agreement.Flags);
        _stream.Write(reply);
        _stream.Flush();
        return agreement;
    }

    private void List(byte[] data)
    {
        if (data.Length != 0)
        {
            Reply(NbdOption.List, NbdOptionReplyType.ErrorInvalid, "NBD_OPT_LIST takes no data");
            return;
        }
        foreach (var export in options.Exports)
        {
            byte[] name = Encoding.UTF8.GetBytes(export.Name), description = Encoding.UTF8.GetBytes(export.Description);
            var body = new byte[4 + name.Length + description.Length];
            BinaryPrimitives.WriteUInt32BigEndian(body, (uint)name.Length);
            name.CopyTo(body, 4);
            description.CopyTo(body, 4 + name.Length);
            Reply(NbdOption.List, NbdOptionReplyType.Server, body);
        }
        Reply(NbdOption.List, NbdOptionReplyType.Ack);
    }

    /// <summary>Upgrades the connection to TLS; false if the TLS handshake failed (the connection is unusable).</summary>
    private bool StartTls(byte[] data)
    {
        if (data.Length != 0) { Reply(NbdOption.StartTls, NbdOptionReplyType.ErrorInvalid, "NBD_OPT_STARTTLS takes no data"); return true; }
        if (_tls) { Reply(NbdOption.StartTls, NbdOptionReplyType.ErrorInvalid, "TLS is already on"); return true; }
        if (options.TlsCertificate is null) { Reply(NbdOption.StartTls, NbdOptionReplyType.ErrorPolicy, "this server has no TLS certificate (serve --tls-cert)"); return true; }
        Reply(NbdOption.StartTls, NbdOptionReplyType.Ack);
        var tls = new SslStream(_stream, leaveInnerStreamOpen: false);
        try
        {
            tls.AuthenticateAsServer(new SslServerAuthenticationOptions
            {
                ServerCertificate = options.TlsCertificate,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                ClientCertificateRequired = false,
            });
        }
        catch (Exception e) when (e is AuthenticationException or IOException)
        {
            options.Log($"nbd: {peer}: TLS handshake failed: {e.Message}");
            tls.Dispose();
            return false;
        }
        _stream = tls;
        _tls = true;
        // Nothing negotiated in the clear carries over (the protocol's rule against downgrade attacks).
        _structured = false;
        _contexts = [];
        _contextsExport = null;
        return true;
    }

    private NbdAgreement? InfoOrGo(NbdOption option, byte[] data)
    {
        if (data.Length < 6) { Reply(option, NbdOptionReplyType.ErrorInvalid, "option data too short"); return null; }
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > data.Length - 6 || nameLength > NbdLimits.MaxString) { Reply(option, NbdOptionReplyType.ErrorInvalid, "export name length past the option data"); return null; }
        string name = Encoding.UTF8.GetString(data, 4, (int)nameLength);
        int at = 4 + (int)nameLength;
        int requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at));
        if (data.Length != at + 2 + 2 * requests) { Reply(option, NbdOptionReplyType.ErrorInvalid, "information request count does not match the option length"); return null; }
        var wanted = new HashSet<NbdInfoType>();
        for (int i = 0; i < requests; i++) wanted.Add((NbdInfoType)BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at + 2 + 2 * i)));
        if (Find(name) is not { } export) { Reply(option, NbdOptionReplyType.ErrorUnknown, $"no export named '{Printable(name)}'"); return null; }

        var agreement = Agree(export);
        var info = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.Export);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Device.Size);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), (ushort)agreement.Flags);
        Reply(option, NbdOptionReplyType.Info, info.AsSpan(0, 12));
        if (wanted.Contains(NbdInfoType.Name)) Reply(option, NbdOptionReplyType.Info, TypedString(NbdInfoType.Name, export.Name));
        if (wanted.Contains(NbdInfoType.Description) && export.Description.Length > 0)
            Reply(option, NbdOptionReplyType.Info, TypedString(NbdInfoType.Description, export.Description));
        // Always sent: any length and offset works (unaligned I/O is split head / body / tail below), but 4 KiB is best.
        BinaryPrimitives.WriteUInt16BigEndian(info, (ushort)NbdInfoType.BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info.AsSpan(2), MinimumBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info.AsSpan(6), PreferredBlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(info.AsSpan(10), NbdLimits.MaxPayload);
        Reply(option, NbdOptionReplyType.Info, info);
        Reply(option, NbdOptionReplyType.Ack);
        return option == NbdOption.Go ? agreement : null;
    }

    private void MetaContext(NbdOption option, byte[] data)
    {
        bool listing = option == NbdOption.ListMetaContext;
        if (!_structured) { Reply(option, NbdOptionReplyType.ErrorInvalid, "negotiate NBD_OPT_STRUCTURED_REPLY first"); return; }
        if (!listing) { _contexts = []; _contextsExport = null; }   // replaced even when this request fails
        if (!TryParseQueries(data, out string name, out var queries)) { Reply(option, NbdOptionReplyType.ErrorInvalid, "malformed meta context request"); return; }
        if (Find(name) is not { } export) { Reply(option, NbdOptionReplyType.ErrorUnknown, $"no export named '{Printable(name)}'"); return; }

        var names = new List<string>();
        if (queries.Count == 0) { if (listing) names.AddRange(NbdMetaContext.All(export)); }
        else foreach (string query in queries) names.AddRange(NbdMetaContext.Matching(export, query, listing));
        names = names.Distinct().ToList();
        var selected = new List<NbdMetaContext>();
        foreach (string context in names)
        {
            uint id = listing ? 0 : (uint)selected.Count + 1;
            if (!listing)
                selected.Add(new NbdMetaContext(id, context,
                    context.StartsWith(NbdMetaContext.DirtyBitmapPrefix, StringComparison.Ordinal) ? context[NbdMetaContext.DirtyBitmapPrefix.Length..] : null));
            byte[] text = Encoding.UTF8.GetBytes(context);
            var body = new byte[4 + text.Length];
            BinaryPrimitives.WriteUInt32BigEndian(body, id);
            text.CopyTo(body, 4);
            Reply(option, NbdOptionReplyType.MetaContext, body);
        }
        if (!listing) { _contexts = selected; _contextsExport = name; }
        Reply(option, NbdOptionReplyType.Ack);
    }

    private static bool TryParseQueries(byte[] data, out string name, out List<string> queries)
    {
        name = "";
        queries = [];
        if (data.Length < 8) return false;
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > NbdLimits.MaxString || nameLength > data.Length - 8) return false;
        name = Encoding.UTF8.GetString(data, 4, (int)nameLength);
        int at = 4 + (int)nameLength;
        uint count = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
        at += 4;
        for (uint i = 0; i < count; i++)
        {
            if (data.Length - at < 4) return false;
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at));
            at += 4;
            if (length > NbdLimits.MaxString || length > data.Length - at) return false;
            queries.Add(Encoding.UTF8.GetString(data, at, (int)length));
            at += (int)length;
        }
        return at == data.Length;
    }

    private static byte[] TypedString(NbdInfoType type, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var body = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(body, (ushort)type);
        bytes.CopyTo(body, 2);
        return body;
    }

    private static string Printable(string name) => name.Length > 64 ? name[..64] + "…" : name;

    private void Reply(NbdOption option, NbdOptionReplyType type, string message) => Reply(option, type, Encoding.UTF8.GetBytes(message));

    private void Reply(NbdOption option, NbdOptionReplyType type, ReadOnlySpan<byte> body = default)
    {
        var message = new byte[NbdOptionReplyHeader.EncodedSize + body.Length];
        new NbdOptionReplyHeader(option, type, (uint)body.Length).Write(message);
        body.CopyTo(message.AsSpan(NbdOptionReplyHeader.EncodedSize));
        _stream.Write(message);
        _stream.Flush();
    }

    /// <summary>The ACK to ABORT: the client may already have gone, which is fine.</summary>
    private void TryReply(NbdOption option, NbdOptionReplyType type)
    {
        try { Reply(option, type); }
        catch (IOException) { }
    }
}
