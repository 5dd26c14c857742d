namespace CowDisk.Format.Qcow2;

/// <summary>
/// qcow2 v3 header bytes 72–79: features a reader must understand; an image with an unknown bit set must not be
/// opened (qcow2.txt, "incompatible_features").
/// </summary>
[Flags]
public enum Qcow2IncompatibleFeatures : ulong
{
    None = 0,
    /// <summary>Bit 0: refcounts may be inconsistent (lazy refcounts after a crash); the L1/L2 tables are still valid.</summary>
    Dirty = 1UL << 0,
    /// <summary>Bit 1: some structure may be corrupt; the image must not be written.</summary>
    Corrupt = 1UL << 1,
    /// <summary>Bit 2: guest clusters live in an external data file.</summary>
    ExternalDataFile = 1UL << 2,
    /// <summary>Bit 3: compressed clusters use the header's non-zlib compression_type.</summary>
    CompressionType = 1UL << 3,
    /// <summary>Bit 4: L2 entries are 128 bits with a subcluster allocation bitmap.</summary>
    ExtendedL2 = 1UL << 4,
}
