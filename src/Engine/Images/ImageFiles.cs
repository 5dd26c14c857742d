using CowDisk.Engine.Metadata;

namespace CowDisk.Engine.Images;

/// <summary>The files that make up one image, all derived from the one path a user names (the data file).</summary>
public sealed record ImageFiles(string DataPath)
{
    public const string MetadataSuffix = ".meta.db";

    public string MetadataPath => DataPath + MetadataSuffix;
    public string MetadataLogPath => MetadataStore.LogPathFor(MetadataPath);
    public string Folder => Path.GetDirectoryName(DataPath) ?? ".";

    public static ImageFiles For(string path) => new(Path.GetFullPath(path));

    /// <summary>The files that exist now, data file first.</summary>
    public IReadOnlyList<string> Existing() =>
        new[] { DataPath, MetadataPath, MetadataLogPath }.Where(File.Exists).ToArray();

    /// <summary>Resolves a backing path as stored in the image (relative to the image's folder).</summary>
    public string ResolveBacking(string backing) => Path.GetFullPath(Path.Combine(Folder, backing));
}
