using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>
/// qemu's image locking, so qemu and cowdisk see each other's use of a file: open-file-description locks on
/// byte 100 + n for each permission n an opener holds, and on byte 200 + n for each permission it does not let
/// others have (n: 0 consistent read, 1 write, 2 write unchanged, 3 resize). An opener first takes its own bytes,
/// then looks for conflicting holders; of two racing openers at least one sees the other.
/// </summary>
internal static class QemuImageLock
{
    private const long PermissionBase = 100, UnsharedBase = 200;
    private const int ConsistentRead = 0, Write = 1, Resize = 3;

    /// <summary>
    /// A reader (a base, a convert source) holds consistent read and lets nobody write or resize; a writer holds
    /// read and write and lets nobody else write or resize. False when another opener conflicts (qemu writing
    /// the file, or reading it as a base while we want to write). A file system without these locks: true.
    /// </summary>
    public static bool TryTake(SafeFileHandle handle, bool write)
    {
        int fd = (int)handle.DangerousGetHandle();
        var own = write
            ? new[] { PermissionBase + ConsistentRead, PermissionBase + Write, UnsharedBase + Write, UnsharedBase + Resize }
            : new[] { PermissionBase + ConsistentRead, UnsharedBase + Write, UnsharedBase + Resize };
        foreach (long b in own)
        {
            var lk = new FileLock.Flock { Type = FileLock.F_RDLCK, Start = b, Length = 1 };
            if (FileLock.fcntl(fd, FileLock.F_OFD_SETLK, ref lk) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno is 11 or 13) return false;   // a conflicting exclusive lock
                return true;                           // no OFD locks here (EINVAL, ENOLCK): nothing to agree with
            }
        }
        // Who else holds a permission we do not share, or forbids one we hold?
        var conflicts = write
            ? new[] { PermissionBase + Write, PermissionBase + Resize, UnsharedBase + ConsistentRead, UnsharedBase + Write }
            : new[] { PermissionBase + Write, PermissionBase + Resize, UnsharedBase + ConsistentRead };
        foreach (long b in conflicts)
            if (HeldByAnother(fd, b)) return false;
        return true;
    }

    private static bool HeldByAnother(int fd, long offset)
    {
        // A write-lock probe conflicts with any lock another open file holds there (never with our own).
        var lk = new FileLock.Flock { Type = FileLock.F_WRLCK, Start = offset, Length = 1 };
        return FileLock.fcntl(fd, FileLock.F_OFD_GETLK, ref lk) == 0 && lk.Type != FileLock.F_UNLCK;
    }
}
