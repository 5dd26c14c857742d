using CowDisk.Format.Mapping;
using CowDisk.Format.Ring;

namespace CowDisk.Engine.Target;

/// <summary>Where a run of consecutive virtual blocks lives, as the target acts on it.</summary>
internal struct BlockRun
{
    public MappingSource Source;      // Data, Zero or Backing
    public long DeviceBlock;          // Data: first physical cluster
    public int Count;
    public MapResponseFlags Flags;    // CopyFirst / Zero / Sync for new extents
    public ulong Id;                  // echoed in MAP_BLOCK_DONE
    public ushort SourceDevice;       // CopyFirst without Zero: the data file (a cluster a snapshot shares) or the base
    public long SourceBlock;          // CopyFirst from the data file: the first old cluster; Layered: the cluster under
    public ulong Mask;                // Layered: the subclusters DeviceBlock holds
}
