using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>One image (or IMAGE@SNAPSHOT) served under an export name.</summary>
public sealed record ServedImage(string Image, string? Snapshot, string ExportName);

/// <summary>What `cowdisk serve` was asked to do.</summary>
public sealed record ServeRequest
{
    /// <summary>The name in the attach registry (list, detach) and of the default Unix socket.</summary>
    public required string Name { get; init; }
    public required IReadOnlyList<ServedImage> Images { get; init; }
    public bool ReadOnly { get; init; }
    public string? UnixSocket { get; init; }
    public IPEndPoint? Tcp { get; init; }
    public X509Certificate2? TlsCertificate { get; init; }
    public bool RequireTls { get; init; }
    public EngineSettings Engine { get; init; } = new();
}
