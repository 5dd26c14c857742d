namespace CowDisk.Engine.Devices;

/// <summary>An I/O request the device cannot serve: out of range, read-only, or a failed system call.</summary>
/// <param name="errno">What a frontend answers its client with (EIO unless the cause is known, e.g. ENOSPC).</param>
public class BlockDeviceException(string message, Exception? inner = null, int errno = 5) : IOException(message, inner)
{
    public int Errno { get; } = errno;
}

/// <summary>Metadata or on-disk state that breaks an invariant: the image is corrupt, not the request.</summary>
public sealed class CorruptImageException(string message) : BlockDeviceException(message);
