using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>
/// An exclusive flock on a lock file, held for the life of this object. The kernel drops it when the process
/// dies, however it dies, which makes it a liveness signal that pids (which get reused) are not.
/// </summary>
internal sealed class LifetimeLock : IDisposable
{
    private readonly SafeFileHandle _handle;

    private LifetimeLock(SafeFileHandle handle) => _handle = handle;

    /// <summary>Takes the lock without waiting; null when another process holds it.</summary>
    public static LifetimeLock? TryAcquire(string path)
    {
        // A raw descriptor: a .NET FileStream would take (and conflict on) its own flock.
        var handle = PosixFile.Open(path, PosixFile.O_RDWR | PosixFile.O_CREAT, mode: 0x180 /* 0600 */);
        try
        {
            if (FileLock.TryLock(handle, exclusive: true)) return new LifetimeLock(handle);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
        handle.Dispose();
        return null;
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
