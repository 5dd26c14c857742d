using CowDisk.Format.Image;

namespace CowDisk.Engine.Images;

/// <summary>Reads just the header of a file that may be a cowdisk image, for identity checks that must not open it.</summary>
internal static class ImageHeaderProbe
{
    /// <summary>The image id in the file's header, or null when the file is missing or not a cowdisk image.</summary>
    public static Guid? IdOf(string path)
    {
        if (Native.HostFile.IsSpecialFile(path)) return null;   // a FIFO's open would wait for a writer
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var page = new byte[ImageHeader.Size];
            f.ReadExactly(page);
            return ImageHeader.Read(page).ImageId;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }
}
