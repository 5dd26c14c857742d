namespace CowDisk.Format.Image;

[Flags]
public enum ImageHeaderFlags : uint
{
    None = 0,
    /// <summary>The extents live on a separate data device (named in the metadata), whose cluster 0 repeats this header.</summary>
    ExternalData = 1,
    Known = ExternalData,
}
