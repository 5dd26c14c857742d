using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>mount(2) and umount2(2).</summary>
internal static partial class Mount
{
    public const ulong MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8;
    private const int MNT_DETACH = 2;

    [LibraryImport("libc", EntryPoint = "mount", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int MountNative(string source, string target, string fileSystemType, ulong flags, string data);

    [LibraryImport("libc", EntryPoint = "umount2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Umount2Native(string target, int flags);

    public static void Attach(string source, string target, string fileSystemType, ulong flags, string data)
    {
        if (MountNative(source, target, fileSystemType, flags, data) != 0)
            throw new IOException($"mount {fileSystemType} on {target} failed: {Errno.Describe(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>Unmounts; returns 0 or the errno (EBUSY: still in use, EINVAL: not a mount point).</summary>
    public static int TryUnmount(string target, bool lazy)
    {
        return Umount2Native(target, lazy ? MNT_DETACH : 0) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    /// <summary>Whether path is a mount point, from /proc/self/mountinfo (works for dead FUSE mounts too).</summary>
    public static bool IsMountPoint(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length > 4 && UnescapeMountPath(fields[4]) == full) return true;
        }
        return false;
    }

    /// <summary>The device number (major:minor) of the file system mounted at path; for FUSE the minor names the connection.</summary>
    public static (int Major, int Minor)? DeviceNumberOf(string path)
    {
        string full = Path.GetFullPath(path).TrimEnd('/');
        (int, int)? found = null;
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            string[] fields = line.Split(' ');
            if (fields.Length <= 4 || UnescapeMountPath(fields[4]) != full) continue;
            string[] numbers = fields[2].Split(':');
            found = (int.Parse(numbers[0]), int.Parse(numbers[1])); // the last one listed is on top
        }
        return found;
    }

    private static string UnescapeMountPath(string field) =>
        field.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");
}
