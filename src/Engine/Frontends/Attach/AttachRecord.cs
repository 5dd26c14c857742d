using System.Text.Json.Serialization;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>What a running attachment publishes in NAME.json for list and detach.</summary>
public sealed record AttachRecord
{
    public required string Name { get; init; }
    /// <summary>The image the user named (the base when an overlay is in use).</summary>
    public required string Image { get; init; }
    /// <summary>The overlay created for this attachment, which takes the writes; null without --overlay.</summary>
    public string? Overlay { get; init; }
    /// <summary>The snapshot served read-only (IMAGE@SNAPSHOT), or null for the live disk.</summary>
    public string? Snapshot { get; init; }
    public required int Pid { get; init; }
    public required bool ReadOnly { get; init; }
    public required DateTimeOffset Started { get; init; }
    /// <summary>starting, running, stopping, then the outcome: detached, or failed (Error says why). See <see cref="AttachState"/>.</summary>
    public required string State { get; init; }
    public string? Device { get; init; }
    public string? Link { get; init; }
    public string? MountPoint { get; init; }
    /// <summary>The file the loop device is bound to (inside MountPoint).</summary>
    public string? BackingFile { get; init; }
    public bool? DirectIo { get; init; }
    /// <summary>How FUSE requests reach the daemon: "io-uring" or "dev-fuse" (null before the mount).</summary>
    public string? Transport { get; init; }
    /// <summary>This daemon turned the kernel's FUSE io_uring switch on: whoever cleans up after it turns it back off.</summary>
    public bool TurnedOnIoUring { get; init; }
    /// <summary>Where the image is served over NBD (serve, attach --nbd), as client URIs; null when it is not.</summary>
    public string[]? Nbd { get; init; }
    public string? Error { get; init; }

    /// <summary>The image file this attachment writes, or null when it only reads.</summary>
    [JsonIgnore]
    public string? WrittenImage => ReadOnly ? null : Overlay ?? Image;

    /// <summary>Every image file this attachment has open.</summary>
    [JsonIgnore]
    public IEnumerable<string> OpenImages => Overlay is null ? [Image] : [Image, Overlay];

    /// <summary>The loop device number, from Device (/dev/loopN).</summary>
    [JsonIgnore]
    public int? LoopNumber => Device is { } device && device.StartsWith("/dev/loop", StringComparison.Ordinal)
                              && int.TryParse(device.AsSpan("/dev/loop".Length), out int number) ? number : null;
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AttachRecord))]
[JsonSerializable(typeof(List<AttachRecord>))]
[JsonSerializable(typeof(List<AttachmentStatus>))]
public sealed partial class AttachJsonContext : JsonSerializerContext;
