using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>/dev/fuse descriptors beyond the session's: clones that share its connection.</summary>
internal static partial class FuseDevice
{
    /// <summary>_IOR(229, 0, uint32_t): attach a new /dev/fuse descriptor to the connection of another.</summary>
    private const uint FUSE_DEV_IOC_CLONE = 0x8004E500;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlClone(int fd, nuint request, ref uint sessionFd);

    /// <summary>
    /// A new descriptor on the connection of sessionFd, or -errno. Each has its own queue of requests being
    /// processed, so workers reading their own clone do not contend on one; a reply goes to the descriptor its
    /// request was read from.
    /// </summary>
    public static int Clone(int sessionFd)
    {
        int fd = PosixFile.TryOpen("/dev/fuse", PosixFile.O_RDWR);   // TryOpen adds O_CLOEXEC
        if (fd < 0) return fd;
        uint session = (uint)sessionFd;
        if (IoctlClone(fd, FUSE_DEV_IOC_CLONE, ref session) == 0) return fd;
        int errno = Marshal.GetLastPInvokeError();
        PosixFile.Close(fd);
        return -errno;
    }
}
