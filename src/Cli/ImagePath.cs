namespace CowDisk.Cli;

/// <summary>
/// A folder where an image's data file is meant: said plainly before the engine is asked, which would report
/// it as missing (open) or as "Access to the path is denied" (create).
/// </summary>
public static class ImagePath
{
    public static string RequireNotFolder(string path)
    {
        string full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new CliException($"image {full} is a folder, not an image (name its data file)");
        return path;
    }
}
