namespace CowDisk.Format.Nbd;

/// <summary>Request types of the transmission phase.</summary>
public enum NbdCommand : ushort
{
    Read = 0,
    Write = 1,
    Disconnect = 2,
    Flush = 3,
    Trim = 4,
    Cache = 5,
    WriteZeroes = 6,
    BlockStatus = 7,
}

/// <summary>Per-request command flags.</summary>
[Flags]
public enum NbdCommandFlags : ushort
{
    None = 0,
    Fua = 1 << 0,
    NoHole = 1 << 1,
    DontFragment = 1 << 2,
    RequestOne = 1 << 3,
    FastZero = 1 << 4,
    Known = Fua | NoHole | DontFragment | RequestOne | FastZero,
}
