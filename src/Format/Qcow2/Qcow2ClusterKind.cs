namespace CowDisk.Format.Qcow2;

/// <summary>What a decoded L2 entry says about a guest cluster.</summary>
public enum Qcow2ClusterKind
{
    /// <summary>Not allocated here: read from the backing file, or zeros without one.</summary>
    Unallocated,
    /// <summary>Reads as zeros (the zero flag; a host offset, if any, is only preallocation).</summary>
    Zero,
    /// <summary>Stored uncompressed at a cluster-aligned host offset.</summary>
    Standard,
    /// <summary>Stored compressed at a byte-granular host offset spanning whole 512-byte sectors.</summary>
    Compressed,
}
