using CowDisk.Engine.Native;

namespace CowDisk.Engine.Images.Qcow2;

/// <summary>
/// Where a qcow2 image's stored backing file name leads, and whether we follow it. A qcow2 file is often
/// downloaded; its backing name is whatever its maker wrote ("/etc/shadow", "../../secret", a symlink out of the
/// folder). By default only a relative name that stays inside the image's own folder — after every symlink is
/// resolved — is followed; <see cref="Qcow2OpenOptions.AllowAnyBackingPath"/> lifts that.
/// </summary>
internal static class Qcow2BackingPath
{
    /// <summary>The path to open for <paramref name="stored"/>, relative names taken from the folder of <paramref name="imagePath"/>.</summary>
    public static string Resolve(string imagePath, string stored, bool allowAny)
    {
        if (stored.Contains('\0')) throw new ImageOpenException($"backing file name of {imagePath} contains a NUL byte");
        string imageFolder = Path.GetDirectoryName(imagePath) ?? ".";
        string folder = HostFile.RealPath(imageFolder) ?? imageFolder;
        const string hint = "only a relative name inside the image's folder is followed unless any backing path is allowed";
        if (Path.IsPathRooted(stored))
        {
            if (!allowAny) throw new ImageOpenException($"backing file '{stored}' of {imagePath} is an absolute path: refused ({hint})");
            return Path.GetFullPath(stored);
        }
        string candidate = Path.GetFullPath(Path.Combine(folder, stored));
        if (allowAny) return candidate;
        if (!Inside(candidate, folder))
            throw new ImageOpenException($"backing file '{stored}' of {imagePath} leads outside {folder}: refused ({hint})");
        // Symlinks (of the file or of folders on the way) are resolved, then checked again.
        if (HostFile.RealPath(candidate) is not { } real) return candidate;   // missing: the open says so
        if (!Inside(real, folder))
            throw new ImageOpenException($"backing file '{stored}' of {imagePath} is a symlink to {real}, outside {folder}: refused ({hint})");
        return real;
    }

    private static bool Inside(string path, string folder)
    {
        string prefix = folder.EndsWith('/') ? folder : folder + "/";
        return path.StartsWith(prefix, StringComparison.Ordinal) && path.Length > prefix.Length;
    }
}
