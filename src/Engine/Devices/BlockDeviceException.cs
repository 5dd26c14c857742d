namespace CowDisk.Engine.Devices;

/// <summary>An I/O request the device cannot serve: out of range, read-only, or a failed system call.</summary>
public class BlockDeviceException(string message, Exception? inner = null) : IOException(message, inner);

/// <summary>Metadata or on-disk state that breaks an invariant: the image is corrupt, not the request.</summary>
public sealed class CorruptImageException(string message) : BlockDeviceException(message);
