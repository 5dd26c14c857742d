namespace CowDisk.Engine.Frontends.Attach;

/// <summary>One spelling per file, so that two attachments of the same image are recognised as such.</summary>
internal static class CanonicalPath
{
    public static string Of(string path)
    {
        string full = Path.GetFullPath(path);
        try { return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full; }
        catch (IOException) { return full; }
    }
}
