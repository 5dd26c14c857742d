using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace CowDisk.Engine.Frontends.Nbd;

public sealed class NbdServerOptions
{
    /// <summary>The exports by name; the first is also the default export (the empty name).</summary>
    public required IReadOnlyList<NbdExport> Exports { get; init; }
    /// <summary>A Unix socket to listen on (created mode 0600; a stale socket there is replaced).</summary>
    public string? UnixSocket { get; init; }
    /// <summary>A TCP address to listen on.</summary>
    public IPEndPoint? Tcp { get; init; }
    /// <summary>Certificate (with its private key) for NBD_OPT_STARTTLS; null: TLS not offered.</summary>
    public X509Certificate2? TlsCertificate { get; init; }
    /// <summary>Every option except STARTTLS and ABORT is refused until TLS is up (FORCEDTLS mode).</summary>
    public bool RequireTls { get; init; }
    /// <summary>Threads that run requests against the devices, shared by all connections.</summary>
    public int Workers { get; init; } = Math.Max(4, 2 * Environment.ProcessorCount);
    public int MaxConnections { get; init; } = 64;
    /// <summary>Payload bytes one connection may have in flight; its reads wait beyond that (bounded memory).</summary>
    public int MaxBytesInFlight { get; init; } = 64 << 20;
    public int MaxRequestsInFlight { get; init; } = 128;
    /// <summary>A client that has not finished the handshake by then is dropped.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A reply the client does not read for this long closes its connection.</summary>
    public TimeSpan SendTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public Action<string> Log { get; init; } = _ => { };
}
