namespace CowDisk.Format.Mapping;

/// <summary>A decoded mapping of one virtual block.</summary>
/// <param name="Epoch">Birth epoch of the extent; a snapshot freezes an epoch and shares what is born at or before it.</param>
/// <param name="Shared">The extent may be read in place but must be copied before a write (target-side cache only).</param>
public readonly record struct Mapping(MappingSource Source, long PhysicalCluster = 0, uint Epoch = 0, bool Shared = false)
{
    public static readonly Mapping Unallocated = default;
    public static readonly Mapping Zero = new(MappingSource.Zero);
    public static readonly Mapping Backing = new(MappingSource.Backing);
    public static Mapping Data(long physicalCluster, uint epoch = 0) => new(MappingSource.Data, physicalCluster, epoch);

    public bool IsData => Source == MappingSource.Data;
}
