using System.Runtime.InteropServices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Convert;

/// <summary>
/// Temporary names beside a destination: the output is built there and renamed when complete. A staging file
/// carries its process id, so one left by a conversion that was killed is recognised and removed.
/// </summary>
internal static partial class Staging
{
    private const string Marker = ".convert-";

    public static string PathFor(string destination) =>
        Path.Combine(Path.GetDirectoryName(Path.GetFullPath(destination))!, $".{Path.GetFileName(destination)}{Marker}{Environment.ProcessId}");

    /// <summary>Removes staging files for this destination whose process is gone (a conversion killed by a signal or power loss).</summary>
    public static void RemoveAbandoned(string destination)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(destination))!;
        string prefix = $".{Path.GetFileName(destination)}{Marker}";
        foreach (string file in Directory.EnumerateFiles(folder, prefix + "*"))
        {
            string rest = Path.GetFileName(file)[prefix.Length..];
            int digits = rest.TakeWhile(char.IsAsciiDigit).Count();
            if (digits == 0 || !int.TryParse(rest[..digits], out int pid) || pid == Environment.ProcessId) continue;
            if (Directory.Exists($"/proc/{pid}")) continue;   // another conversion still at work
            try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    private const int AT_FDCWD = -100;
    private const uint RENAME_NOREPLACE = 1;
    private const int EEXIST = 17, EINVAL = 22, ENOSYS = 38;

    /// <summary>
    /// Renames the finished output over the destination; without replace, atomically refuses if the destination
    /// appeared meanwhile (renameat2 RENAME_NOREPLACE), so a file made during the conversion is never overwritten.
    /// The rename is made durable (folder fsync) before this returns.
    /// </summary>
    public static void Commit(string staging, string destination, bool replace)
    {
        Rename(staging, destination, replace);
        Storage.HostStorage.Instance.SyncFolder(Path.GetDirectoryName(Path.GetFullPath(destination))!);   // the rename durable
    }

    private static void Rename(string staging, string destination, bool replace)
    {
        if (replace)
        {
            File.Move(staging, destination, overwrite: true);
            return;
        }
        if (renameat2(AT_FDCWD, staging, AT_FDCWD, destination, RENAME_NOREPLACE) == 0) return;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == EEXIST) throw new ImageOpenException($"{destination} appeared while converting; it was left alone (use --force to replace it)");
        if (errno is EINVAL or ENOSYS)   // a file system without RENAME_NOREPLACE: the check at the start has to do
        {
            File.Move(staging, destination, overwrite: false);
            return;
        }
        throw new IOException($"cannot rename {staging} to {destination}: {Native.Errno.Describe(errno)}");
    }
}
