using CowDisk.Engine.Devices;

namespace CowDisk.Engine.Storage;

/// <summary>A failed storage call, with the errno a frontend hands to its client (ENOSPC, EIO, EROFS…).</summary>
public sealed class StorageException(string message, int errno, Exception? inner = null)
    : BlockDeviceException(message, inner, errno)
{
    /// <summary>The errno behind an exception thrown by a storage or .NET file call (EIO when unknown).</summary>
    public static int ErrnoOf(Exception e) => e switch
    {
        BlockDeviceException b => b.Errno,
        UnauthorizedAccessException => Native.Errno.EACCES,
        // .NET on Unix puts the raw errno into an IOException's HResult.
        IOException io when io.HResult is > 0 and < 4096 => io.HResult,
        _ => Native.Errno.EIO,
    };

    public static StorageException From(string what, Exception e) => FromErrno(what, ErrnoOf(e), e);

    /// <summary>"what: the errno's description", carrying the errno.</summary>
    public static StorageException FromErrno(string what, int errno, Exception? inner = null) =>
        new($"{what}: {Native.Errno.Describe(errno)}", errno, inner);
}
