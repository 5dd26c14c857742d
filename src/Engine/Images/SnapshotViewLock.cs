using CowDisk.Engine.Native;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Images;

/// <summary>
/// Readers of a snapshot view that do not hold the image's lock (a view served while another process writes the
/// image) hold this byte-range lock shared on the image file; deleting a snapshot first takes it exclusively for a
/// moment, so no snapshot's clusters are freed under such a reader. The byte lies far past any real data.
/// </summary>
internal static class SnapshotViewLock
{
    private const long Offset = 1L << 62;

    public static bool TryHold(SafeFileHandle imageFile) => FileLock.TryLockByte(imageFile, Offset, exclusive: false);

    /// <summary>True when no view reader holds it (checked, then released at once).</summary>
    public static bool NoReaders(SafeFileHandle imageFile)
    {
        if (!FileLock.TryLockByte(imageFile, Offset, exclusive: true)) return false;
        FileLock.UnlockByte(imageFile, Offset);
        return true;
    }
}

/// <summary>The view lock for the frontends (they open views of images another process holds).</summary>
public static class SnapshotViewLockAccess
{
    public static bool TryHold(SafeFileHandle imageFile) => SnapshotViewLock.TryHold(imageFile);
}
