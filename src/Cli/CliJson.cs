using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Images;
using CowDisk.Engine.Snapshots;

namespace CowDisk.Cli;

/// <summary>How every `--output json` looks: kebab-case names, no nulls, indented, names and paths as typed (no \u escapes).</summary>
public static class CliJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        // Generated metadata, no reflection: the installed cowdisk is compiled ahead of time (Native AOT).
        TypeInfoResolver = CliJsonContext.Default,
    };

    /// <summary>Prints value as one JSON document; its type must be listed on CliJsonContext.</summary>
    public static void Print<T>(T value) =>
        Console.WriteLine(JsonSerializer.Serialize(value, (JsonTypeInfo<T>)Options.GetTypeInfo(typeof(T))));
}

/// <summary>Every type printed with --output json (the names and their policy come from CliJson.Options).</summary>
[JsonSerializable(typeof(ImageInfo))]
[JsonSerializable(typeof(IReadOnlyList<SnapshotInfo>))]
[JsonSerializable(typeof(List<AttachmentStatus>))]
[JsonSerializable(typeof(CheckOutput))]
[JsonSerializable(typeof(IEnumerable<MapOutput>))]
[JsonSerializable(typeof(DiffOutput))]
internal sealed partial class CliJsonContext : JsonSerializerContext;

/// <summary>`check --output json` (qemu-img check's names where they mean the same).</summary>
internal sealed record CheckOutput(string Filename, string Format, int CheckErrors, int Corruptions, long Leaks, long LeaksFixed,
    long? TotalClusters, long? AllocatedClusters, long? SnapshotClusters, long? FreeClusters, int? Snapshots, int? ClusterSize,
    long? ImageEndOffset, List<string> Errors);

/// <summary>One run of `map --output json` (qemu-img map's names, and ours for the source and its file).</summary>
internal sealed record MapOutput(long Start, long Length, int Depth, bool Present, bool Zero, bool Data, long? Offset, string Source, string? File);

/// <summary>`diff --output json`.</summary>
internal sealed record DiffOutput(string From, string To, long ChangedBytes, IEnumerable<DiffRangeOutput> Ranges);

internal sealed record DiffRangeOutput(long Start, long Length);
