namespace CowDisk.Format.Qcow2;

/// <summary>qcow2 header bytes 32–35: how guest data is encrypted.</summary>
public enum Qcow2CryptMethod : uint
{
    None = 0,
    /// <summary>The legacy AES-CBC scheme.</summary>
    Aes = 1,
    /// <summary>LUKS; its header is found through the full disk encryption header extension.</summary>
    Luks = 2,
}
