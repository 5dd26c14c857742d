using System.Text.Json;
using System.Text.Json.Serialization;

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
    };
}
