namespace CowDisk.Format.Qcow2;

/// <summary>qcow2 v3 header bytes 88–95: features a writer that does not know them must clear before writing.</summary>
[Flags]
public enum Qcow2AutoclearFeatures : ulong
{
    None = 0,
    /// <summary>Bit 0: the bitmaps extension's data is consistent.</summary>
    Bitmaps = 1UL << 0,
    /// <summary>Bit 1: the external data file is a consistent raw image by itself.</summary>
    RawExternalData = 1UL << 1,
}
