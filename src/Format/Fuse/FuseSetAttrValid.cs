namespace CowDisk.Format.Fuse;

/// <summary>Which fields of a SETATTR request are set (FATTR_*).</summary>
[Flags]
public enum FuseSetAttrValid : uint
{
    None = 0,
    Mode = 1u << 0,
    Uid = 1u << 1,
    Gid = 1u << 2,
    Size = 1u << 3,
    AccessTime = 1u << 4,
    ModifyTime = 1u << 5,
    FileHandle = 1u << 6,
    AccessTimeNow = 1u << 7,
    ModifyTimeNow = 1u << 8,
    LockOwner = 1u << 9,
    ChangeTime = 1u << 10,
    KillSuidGid = 1u << 11,
}
