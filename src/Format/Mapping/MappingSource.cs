namespace CowDisk.Format.Mapping;

/// <summary>Where a virtual block's bytes come from.</summary>
public enum MappingSource : byte
{
    /// <summary>Not mapped by this image: read through to the base, or zeros without one.</summary>
    Unallocated = 0,
    /// <summary>Reads as zeros even over a base (after discard or write-zeroes).</summary>
    Zero = 1,
    /// <summary>Stored in this image's data file at a physical cluster.</summary>
    Data = 2,
    /// <summary>Read from the base image at the same virtual offset (target-side cache only).</summary>
    Backing = 3,
}
