namespace CowDisk.Engine.Snapshots;

/// <summary>A named, read-only point in an image's history: the epoch it froze.</summary>
public sealed record SnapshotInfo(int Id, string Name, [property: System.Text.Json.Serialization.JsonIgnore] uint Epoch,
    [property: System.Text.Json.Serialization.JsonPropertyName("created")] DateTime CreatedUtc)
{
    /// <summary>Bytes of data clusters that only this snapshot still reads (freed if it is deleted); -1 when not computed.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public long ExclusiveBytes { get; init; } = -1;

    /// <summary><see cref="ExclusiveBytes"/> as shown: absent where unknown (a qcow2 snapshot).</summary>
    [System.Text.Json.Serialization.JsonPropertyName("exclusive-bytes")]
    public long? ExclusiveBytesIfKnown
    {
        get => ExclusiveBytes >= 0 ? ExclusiveBytes : null;
        init => ExclusiveBytes = value ?? -1;   // read back from a daemon's answer
    }

    /// <summary>The disk size when the snapshot was taken, where the format records it per snapshot (qcow2); else null.</summary>
    public long? VirtualSize { get; init; }

    /// <summary>Bytes of saved VM state (qcow2 snapshots taken by a running VM); null where the format has none.</summary>
    public long? VmStateSize { get; init; }

    /// <summary>What any build ever accepted, for loading: a stored name is kept even if today's rules are stricter.</summary>
    public static string? InvalidStored(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) return "a snapshot name cannot be empty";
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 128) return "a snapshot name is at most 128 bytes";
        if (name.IndexOfAny(['@', '/', '\\']) >= 0 || name.Any(char.IsControl)) return $"snapshot name '{name}' has characters no build accepts";
        return null;
    }

    /// <summary>Names a user may give: not empty, at most 128 bytes, no '@' (it separates image and snapshot), '/' or control characters.</summary>
    public static string? Invalid(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) return "a snapshot name cannot be empty";
        if (System.Text.Encoding.UTF8.GetByteCount(name) > 128) return "a snapshot name is at most 128 bytes";
        if (name.IndexOfAny(['@', '/', '\\']) >= 0) return $"snapshot name '{name}' may not contain '@', '/' or '\\'";
        if (name.Any(c => char.IsControl(c) || System.Globalization.CharUnicodeInfo.GetUnicodeCategory(c) is
                System.Globalization.UnicodeCategory.Format or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator))
            return "a snapshot name may not contain control or invisible characters";
        if (name.All(char.IsAsciiDigit)) return $"snapshot name '{name}' is all digits, which would read as a snapshot id";
        if (name != name.Trim()) return $"snapshot name '{name}' may not start or end with spaces";
        return null;
    }
}
