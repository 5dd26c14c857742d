namespace CowDisk.Engine.Images;

/// <summary>The files that make up one image, all derived from the one path a user names (the data file).</summary>
public sealed record ImageFiles(string DataPath)
{
    public const string MetadataSuffix = ".meta.db";
    public const string MetadataLogSuffix = ".meta.log";

    public string MetadataPath => DataPath + MetadataSuffix;
    /// <summary>LiteDB's write-ahead log in checksummed frames (see docs/FORMAT.md).</summary>
    public string MetadataLogPath => DataPath + MetadataLogSuffix;
    /// <summary>LiteDB's own log file, as format-1 images before the framed log had it: "x.meta.db" → "x.meta-log.db".</summary>
    public string LegacyMetadataLogPath => DataPath + ".meta-log.db";
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

    /// <summary>Every file name an image may own, data file first.</summary>
    public IReadOnlyList<string> All => new[] { DataPath, MetadataPath, MetadataLogPath, LegacyMetadataLogPath };

    /// <summary>The files that exist now, data file first.</summary>
    public IReadOnlyList<string> Existing() => All.Where(File.Exists).ToArray();

    /// <summary>Resolves a backing path as stored in the image (relative to the image's folder).</summary>
    public string ResolveBacking(string backing) => Path.GetFullPath(Path.Combine(Folder, backing));
}
