using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>
/// An exclusive flock on a lock file, held for the life of this object. The kernel drops it when the process
/// dies, however it dies, which makes it a liveness signal that pids (which get reused) are not.
/// </summary>
internal sealed unsafe partial class LifetimeLock : IDisposable
{
    // struct stat: st_ino follows the 8-byte st_dev on x86-64 and arm64; 256 bytes covers the whole struct.
    private const int StatBufferSize = 256, InodeOffset = 8;

    [LibraryImport("libc", EntryPoint = "fstat", SetLastError = true)]
    private static partial int FStatNative(int fd, byte* buffer);

    [LibraryImport("libc", EntryPoint = "stat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatNative(string path, byte* buffer);

    private readonly SafeFileHandle _handle;
    private readonly string _path;

    private LifetimeLock(SafeFileHandle handle, string path)
    {
        _handle = handle;
        _path = path;
    }

    /// <summary>Takes the lock without waiting; null when another process holds it.</summary>
    public static LifetimeLock? TryAcquire(string path)
    {
        while (true)
        {
            // A raw descriptor: a .NET FileStream would take (and conflict on) its own flock.
            var handle = PosixFile.Open(path, PosixFile.O_RDWR | PosixFile.O_CREAT, mode: 0x180 /* 0600 */);
            bool locked;
            try { locked = FileLock.TryLock(handle, exclusive: true); }
            catch
            {
                handle.Dispose();
                throw;
            }
            if (!locked)
            {
                handle.Dispose();
                return null;
            }
            // The holder may have deleted the file between our open and our flock: then we locked an orphan.
            if (InodeOf(handle) == InodeOf(path)) return new LifetimeLock(handle, path);
            handle.Dispose();
        }
    }

    private static ulong? InodeOf(SafeFileHandle handle)
    {
        byte* buffer = stackalloc byte[StatBufferSize];
        return FStatNative((int)handle.DangerousGetHandle(), buffer) == 0 ? *(ulong*)(buffer + InodeOffset) : null;
    }

    private static ulong? InodeOf(string path)
    {
        byte* buffer = stackalloc byte[StatBufferSize];
        return StatNative(path, buffer) == 0 ? *(ulong*)(buffer + InodeOffset) : null;
    }

    /// <summary>Deletes the lock file, then releases the lock; a waiter that opened the old file sees it is gone.</summary>
    public void ReleaseAndDelete()
    {
        try { File.Delete(_path); }
        finally { _handle.Dispose(); }
    }

    /// <summary>Whether some live process holds the lock at path (false when the file does not exist).</summary>
    public static bool IsHeld(string path)
    {
        if (!File.Exists(path)) return false;
        using var probe = TryAcquire(path);
        return probe is null;
    }

    public void Dispose() => _handle.Dispose();
}
