namespace CowDisk.Format.Fuse;

/// <summary>Capability bits of FUSE_INIT (the low 32 bits; flags2 carries bits 32..63).</summary>
[Flags]
public enum FuseInitFlags : uint
{
    None = 0,
    AsyncRead = 1u << 0,
    PosixLocks = 1u << 1,
    AtomicOTrunc = 1u << 3,
    ExportSupport = 1u << 4,
    BigWrites = 1u << 5,
    DontMask = 1u << 6,
    SpliceWrite = 1u << 7,
    SpliceMove = 1u << 8,
    SpliceRead = 1u << 9,
    FlockLocks = 1u << 10,
    AutoInvalData = 1u << 12,
    DoReadDirPlus = 1u << 13,
    ReadDirPlusAuto = 1u << 14,
    AsyncDio = 1u << 15,
    WritebackCache = 1u << 16,
    NoOpenSupport = 1u << 17,
    ParallelDirOps = 1u << 18,
    HandleKillPriv = 1u << 19,
    MaxPages = 1u << 22,
    CacheSymlinks = 1u << 23,
    NoOpenDirSupport = 1u << 24,
    ExplicitInvalData = 1u << 25,
    HandleKillPrivV2 = 1u << 28,
    SetXAttrExt = 1u << 29,
    InitExt = 1u << 30,
}

/// <summary>Capability bits of FUSE_INIT's flags2 (bits 32..63 of the flags; sent only with InitExt).</summary>
[Flags]
public enum FuseInitFlags2 : uint
{
    None = 0,
    /// <summary>FUSE_OVER_IO_URING (bit 41): requests may come through io_uring queues instead of read(2) on /dev/fuse.</summary>
    OverIoUring = 1u << 9,
}
