namespace CowDisk.Format.Qcow2;

/// <summary>qcow2 v3 header bytes 80–87: features a reader may ignore.</summary>
[Flags]
public enum Qcow2CompatibleFeatures : ulong
{
    None = 0,
    /// <summary>Bit 0: refcount updates may be postponed (the dirty bit marks an image that needs them repaired).</summary>
    LazyRefcounts = 1UL << 0,
}
