namespace CowDisk.Format.Qcow2;

/// <summary>What the extended L2 bitmap says about one subcluster.</summary>
public enum Qcow2SubclusterState
{
    /// <summary>Neither bit: read from the backing file, or zeros.</summary>
    Unallocated,
    /// <summary>The allocation bit: data at the host cluster plus the subcluster's offset.</summary>
    Allocated,
    /// <summary>The zero bit: reads as zeros.</summary>
    Zero,
    /// <summary>Both bits set, which the spec forbids.</summary>
    Invalid,
}
