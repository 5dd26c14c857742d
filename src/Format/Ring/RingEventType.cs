namespace CowDisk.Format.Ring;

/// <summary>Event types on the rings; names follow dm-userspace, numbers are ours.</summary>
public enum RingEventType : ushort
{
    None = 0,
    /// <summary>target → responder: where do these blocks live?</summary>
    MapBlockReq = 1,
    /// <summary>responder → target: here (or: zeros, base, copy first, error).</summary>
    MapBlockRsp = 2,
    /// <summary>target → responder: the I/O for a SYNC response completed with this result.</summary>
    MapBlockDone = 3,
    /// <summary>responder → target: drop cached mappings for a block range.</summary>
    Invalidate = 4,
    /// <summary>target → responder: make everything completed so far durable.</summary>
    FlushReq = 5,
    /// <summary>responder → target: the flush with this id is durable (or failed).</summary>
    FlushRsp = 6,
    /// <summary>target → responder: apply the next queued control operation (a snapshot change) in ring order.</summary>
    ControlReq = 7,
    /// <summary>responder → target: the control operation with this id is durable (or failed).</summary>
    ControlRsp = 8,
}

/// <summary>Flags of a FLUSH_REQ.</summary>
[Flags]
public enum FlushRequestFlags : ushort
{
    None = 0,
    /// <summary>
    /// For a FUA write: sent without draining other I/O, so it makes durable what completed before it (the FUA
    /// write, its mapping) but cannot let extents freed earlier be reused.
    /// </summary>
    NoDrain = 1,
}

/// <summary>Flags of an INVALIDATE.</summary>
[Flags]
public enum InvalidateFlags : ushort
{
    None = 0,
    /// <summary>Drop every cached mapping (after a snapshot or a revert changed what writes may do in place).</summary>
    All = 1,
}

/// <summary>Flags of a MAP_BLOCK_REQ.</summary>
[Flags]
public enum MapRequestFlags : ushort
{
    None = 0,
    Read = 1,
    Write = 2,
    /// <summary>The range must read as zeros from now on; its extents may be released (discard, write-zeroes).</summary>
    Zero = 4,
}

/// <summary>Flags of a MAP_BLOCK_RSP.</summary>
[Flags]
public enum MapResponseFlags : ushort
{
    None = 0,
    /// <summary>Device and device block are set: do the I/O there.</summary>
    Valid = 1,
    /// <summary>New extent: before a partial write, fill the rest of each block from the source (or zeros with Zero).</summary>
    CopyFirst = 2,
    /// <summary>Reads as zeros (no device), or with CopyFirst: the fill source is zeros.</summary>
    Zero = 4,
    /// <summary>Report MAP_BLOCK_DONE when the I/O has completed; the mapping is committed then.</summary>
    Sync = 8,
    /// <summary>The request failed; Result holds a negative errno.</summary>
    Error = 16,
    /// <summary>The extent is shared with a snapshot: read in place, but writes must ask again.</summary>
    Shared = 32,
    /// <summary>With CopyFirst and Zero: the new extent was never written and reads as zeros already; skip the fill.</summary>
    Fresh = 64,
    /// <summary>
    /// A layered block (one block only): the subclusters in Mask live in DeviceBlock, the others in SourceBlock
    /// (the cluster a snapshot shares). Never cached. With CopyFirst and Sync: subclusters outside Mask that the
    /// write covers only partly are filled from SourceBlock, and its DONE adds the written subclusters to the mask.
    /// </summary>
    Layered = 128,
    /// <summary>With CopyFirst: the fill is what the block reads as now (a layered block): read it before writing.</summary>
    FillByRead = 256,
}
