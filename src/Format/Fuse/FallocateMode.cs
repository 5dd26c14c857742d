namespace CowDisk.Format.Fuse;

/// <summary>fallocate(2) mode bits (FALLOC_FL_*) as FALLOCATE requests carry them.</summary>
[Flags]
public enum FallocateMode : uint
{
    Allocate = 0,
    KeepSize = 0x01,
    PunchHole = 0x02,
    NoHideStale = 0x04,
    CollapseRange = 0x08,
    ZeroRange = 0x10,
    InsertRange = 0x20,
    UnshareRange = 0x40,
    WriteZeroes = 0x80,
}
