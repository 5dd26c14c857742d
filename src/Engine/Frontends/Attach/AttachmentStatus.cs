namespace CowDisk.Engine.Frontends.Attach;

/// <summary>One row of `cowdisk list`: a record and whether its daemon is alive.</summary>
public sealed record AttachmentStatus
{
    public required string Name { get; init; }
    public required string Image { get; init; }
    public string? Overlay { get; init; }
    /// <summary>The snapshot served read-only, or null for the live disk.</summary>
    public string? Snapshot { get; init; }
    public string? Device { get; init; }
    public string? Link { get; init; }
    public required int Pid { get; init; }
    public required bool ReadOnly { get; init; }
    public bool? DirectIo { get; init; }
    /// <summary>"io-uring" or "dev-fuse": how the kernel's FUSE requests reach the daemon.</summary>
    public string? Transport { get; init; }
    /// <summary>NBD URIs clients connect to, for `serve` and `attach --nbd`.</summary>
    public string[]? Nbd { get; init; }
    public required DateTimeOffset Started { get; init; }
    /// <summary>The live daemon's state; "failed" when it shut down but could not close cleanly (Error says why),
    /// "stale" when it died; either is shown once, then cleaned up.</summary>
    public required string State { get; init; }
    public string? Error { get; init; }

    public static AttachmentStatus From(AttachRecord record, string state) => new()
    {
        Name = record.Name, Image = record.Image, Overlay = record.Overlay, Snapshot = record.Snapshot, Device = record.Device, Link = record.Link,
        Pid = record.Pid, ReadOnly = record.ReadOnly, DirectIo = record.DirectIo, Transport = record.Transport, Nbd = record.Nbd, Started = record.Started,
        State = state, Error = record.Error,
    };
}
