namespace CowDisk.Engine.Images;

/// <summary>
/// What a user names where an image is read: a path, or IMAGE@SNAPSHOT for a snapshot's read-only view. A path
/// that exists as it is wins (a file may have '@' in its name); '@' inside a folder name is not a separator.
/// </summary>
public readonly record struct ImageRef(string Path, string? Snapshot)
{
    public static ImageRef Parse(string text)
    {
        int at = text.LastIndexOf('@');
        if (at <= 0 || File.Exists(text) || Directory.Exists(text)) return new ImageRef(text, null);
        string name = text[(at + 1)..];
        if (name.Contains('/')) return new ImageRef(text, null);
        if (name.Length == 0) throw new ImageOpenException($"'{text}' names no snapshot after '@'");
        return new ImageRef(text[..at], name);
    }

    public override string ToString() => Snapshot is null ? Path : $"{Path}@{Snapshot}";
}
