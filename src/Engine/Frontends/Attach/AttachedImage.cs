using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>Opens and creates the images attach serves; the one place that names the image implementation.</summary>
internal static class AttachedImage
{
    /// <summary>A cowdisk image read-write or read-only; a raw file only read-only (it has no writer lock).</summary>
    public static IBlockDevice Open(string path, bool readOnly, EngineSettings settings, string? snapshot = null)
    {
        string format = BaseImage.Probe(path);
        if (format == BaseImage.CowDiskFormat)
            return snapshot is not null
                ? BaseImage.OpenForReading(new ImageRef(path, snapshot), settings)   // through a running writer if it is held
                : CowImage.Open(path, new ImageOpenOptions { ReadOnly = readOnly, Settings = settings });
        if (format == BaseImage.Qcow2Format && (readOnly || snapshot is not null))
            return BaseImage.Open(snapshot is null ? path : $"{path}@{snapshot}", depth: 0);   // qcow2 is read, never written
        if (snapshot is not null) throw new AttachException($"{path} is a {format} image, which has no snapshots");
        if (format == BaseImage.RawFormat && readOnly) return new RawFileDevice(path, readOnly: true);
        throw new AttachException(
            $"{path} is a {format} image; attach it with --overlay (writes go to a new cowdisk overlay) or --read-only");
    }

    /// <summary>A new cowdisk image at overlayPath whose unwritten blocks read through to basePath.</summary>
    public static void CreateOverlay(string overlayPath, string basePath, EngineSettings settings, string? snapshot = null)
    {
        if (snapshot is not null)
        {
            CowImage.CreateClone(overlayPath, new ImageRef(basePath, snapshot), new ImageCreateOptions(), settings, CloneRegistration.Through(basePath)).Dispose();
            return;
        }
        // Stored relative to the overlay's folder (they share it), so the pair can move together.
        var options = new ImageCreateOptions { BackingPath = Path.GetFileName(basePath) };
        CowImage.Create(overlayPath, options, settings).Dispose();
    }
}
