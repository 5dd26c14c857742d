using CowDisk.Engine.Devices;
using CowDisk.Engine.Native;
using CowDisk.Format.Image;

namespace CowDisk.Engine.Images;

/// <summary>Describes an image for `info`, also while another process has it open for writing.</summary>
public static class ImageInspector
{
    public static ImageInfo Inspect(string path)
    {
        var reference = ImageRef.Parse(path);
        if (reference.Snapshot is not null)
        {
            using var view = BaseImage.OpenForReading(reference, new EngineSettings());   // through its writer if one holds it
            return BaseImage.Info(view);
        }
        string named = Path.GetFullPath(path), full = ImageFiles.For(named).DataPath;
        if (Directory.Exists(full)) throw new ImageOpenException($"image {named} is a folder, not an image (name its data file)");
        // File.Exists is true for a dangling symlink; the file it names is what must exist.
        if (!File.Exists(full) || new FileInfo(full).LinkTarget is not null)
            throw new ImageOpenException(full == named ? $"image {named} does not exist" : $"image {named} is a symlink to {full}, which does not exist");
        if (BaseImage.Probe(full) != BaseImage.CowDiskFormat)
        {
            using var dev = BaseImage.Open(full, depth: 0);
            return BaseImage.Info(dev);
        }
        try
        {
            using var image = CowImage.Open(full, new ImageOpenOptions { ReadOnly = true });
            return image.GetInfo();
        }
        catch (ImageLockedException)
        {
            return FromHeader(ImageFiles.For(full));
        }
    }

    // The writer owns the metadata; the header alone is safe to read beside it.
    private static ImageInfo FromHeader(ImageFiles files)
    {
        var page = new byte[ImageHeader.Size];
        Storage.HostStorage.RequireOpenable(files.DataPath);
        using (var handle = File.OpenHandle(files.DataPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            RandomAccess.Read(handle, page, 0);
        ImageHeader header;
        try { header = ImageHeader.Read(page); }
        catch (FormatException e) { throw new CorruptImageException($"{files.DataPath}: {e.Message}"); }
        return new ImageInfo
        {
            Path = files.DataPath, Format = BaseImage.CowDiskFormat, VirtualSize = header.VirtualSize,
            ClusterSize = header.ClusterSize, ImageId = header.ImageId, InUse = true,
            DiskBytes = files.Existing().Sum(HostFile.AllocatedBytes), Files = files.Existing(),
        };
    }
}
