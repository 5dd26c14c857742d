namespace CowDisk.Format.Qcow2;

/// <summary>The type word of a qcow2 header extension; other values are unknown extensions a reader may skip.</summary>
public enum Qcow2HeaderExtensionType : uint
{
    /// <summary>Ends the header extension area.</summary>
    End = 0x00000000,
    /// <summary>The backing file's format name ("raw", "qcow2", ...), a string without terminator.</summary>
    BackingFormat = 0xe2792aca,
    /// <summary>Names of feature bits, <see cref="Qcow2FeatureNameEntry"/> records of 48 bytes.</summary>
    FeatureNameTable = 0x6803f857,
    /// <summary>The persistent dirty bitmaps directory.</summary>
    Bitmaps = 0x23852875,
    /// <summary>Where the LUKS header lives, <see cref="Qcow2FullDiskEncryptionPointer"/>.</summary>
    FullDiskEncryption = 0x0537be77,
    /// <summary>The external data file's name, a string without terminator.</summary>
    ExternalDataFile = 0x44415441,
}
