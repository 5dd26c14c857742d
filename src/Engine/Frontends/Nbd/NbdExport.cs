using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// One device served under a name. The server does not own the device: whoever opened it closes it after the
/// server has stopped. Read-only is enforced here whatever the device would allow.
/// </summary>
public sealed class NbdExport
{
    public required string Name { get; init; }
    public string Description { get; init; } = "";
    public required IBlockDevice Device { get; init; }
    public bool ReadOnly { get; init; }

    public bool IsReadOnly => ReadOnly || (Device.Capabilities & BlockDeviceCapabilities.ReadOnly) != 0;

    private readonly object _dirtyLock = new();
    private (string Bitmap, long Generation, List<(long Offset, long Length)> Ranges)? _dirty;

    /// <summary>The byte ranges changed since snapshot bitmap, sorted; cached until the image changes.</summary>
    internal IReadOnlyList<(long Offset, long Length)> Changed(string bitmap)
    {
        if (Device is not CowImage { Snapshot: null } image) throw new InvalidOperationException("dirty bitmaps need a live cowdisk image");
        lock (_dirtyLock)
        {
            long generation = image.ContentGeneration;   // read first: a change during Diff leaves the cache stale-marked
            if (_dirty is { } cached && cached.Bitmap == bitmap && cached.Generation == generation) return cached.Ranges;
            var ranges = image.Diff(bitmap, null);
            _dirty = (bitmap, generation, ranges);
            return ranges;
        }
    }

    /// <summary>The dirty bitmaps this export offers: one per snapshot of a live cowdisk image.</summary>
    public IReadOnlyList<string> DirtyBitmaps() => Device is CowImage { Snapshot: null } image
        ? image.ListSnapshots().Select(s => s.Name).ToList()
        : [];
}
