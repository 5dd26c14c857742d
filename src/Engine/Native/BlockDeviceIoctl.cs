using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>The block-device ioctls a data device needs: its size, and discard.</summary>
internal static unsafe partial class BlockDeviceIoctl
{
    private const ulong BLKGETSIZE64 = 0x80081272;   // _IOR(0x12, 114, size_t)
    private const ulong BLKDISCARD = 0x1277;         // _IO(0x12, 119), argument: u64 { start, length }

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int Ioctl(int fd, ulong request, void* argument);

    public static long Size(SafeFileHandle handle)
    {
        ulong size;
        if (Ioctl((int)handle.DangerousGetHandle(), BLKGETSIZE64, &size) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            throw new IOException($"BLKGETSIZE64 failed: {Errno.Describe(e)}", e);
        }
        return (long)size;
    }

    /// <summary>Tells the device a range is unused; false where it cannot (then nothing changed).</summary>
    public static bool Discard(SafeFileHandle handle, long offset, long length)
    {
        ulong* range = stackalloc ulong[2];
        range[0] = (ulong)offset;
        range[1] = (ulong)length;
        return Ioctl((int)handle.DangerousGetHandle(), BLKDISCARD, range) == 0;
    }
}
