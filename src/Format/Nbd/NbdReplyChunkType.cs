namespace CowDisk.Format.Nbd;

/// <summary>Structured reply chunk types; errors have bit 15 set.</summary>
public enum NbdReplyChunkType : ushort
{
    None = 0,
    OffsetData = 1,
    OffsetHole = 2,
    BlockStatus = 5,
    Error = 0x8001,
    ErrorOffset = 0x8002,
}

[Flags]
public enum NbdReplyFlags : ushort
{
    None = 0,
    /// <summary>The last chunk of a reply.</summary>
    Done = 1 << 0,
}

/// <summary>Status bits of the base:allocation context (qemu:dirty-bitmap uses bit 0 for "dirty").</summary>
[Flags]
public enum NbdAllocationState : uint
{
    Data = 0,
    Hole = 1 << 0,
    Zero = 1 << 1,
}
