using CowDisk.Engine.Metadata;

namespace CowDisk.Engine.Images;

/// <summary>The files that make up one image, all derived from the one path a user names (the data file).</summary>
public sealed record ImageFiles(string DataPath)
{
    public const string MetadataSuffix = ".meta.db";

    public string MetadataPath => DataPath + MetadataSuffix;
    public string MetadataLogPath => MetadataStore.LogPathFor(MetadataPath);
    public string Folder => Path.GetDirectoryName(DataPath) ?? ".";

    /// <summary>
    /// The image at path; a symlink is followed to the data file it names, so the metadata and a relative
    /// backing path are looked up beside the real data, not beside the link.
    /// </summary>
    public static ImageFiles For(string path)
    {
        string full = Path.GetFullPath(path);
        try { return new(new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full); }
        catch (IOException) { return new(full); }   // a link loop: opening the path reports it
    }

    /// <summary>The files that exist now, data file first.</summary>
    public IReadOnlyList<string> Existing() =>
        new[] { DataPath, MetadataPath, MetadataLogPath }.Where(File.Exists).ToArray();

    /// <summary>Resolves a backing path as stored in the image (relative to the image's folder).</summary>
    public string ResolveBacking(string backing) => Path.GetFullPath(Path.Combine(Folder, backing));
}
