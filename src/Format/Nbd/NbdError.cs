namespace CowDisk.Format.Nbd;

/// <summary>Error values in replies (Linux errno numbers, fixed by the protocol whatever the host).</summary>
public enum NbdError : uint
{
    None = 0,
    NotPermitted = 1,
    Io = 5,
    NoMemory = 12,
    Invalid = 22,
    NoSpace = 28,
    Overflow = 75,
    NotSupported = 95,
    Shutdown = 108,
}
