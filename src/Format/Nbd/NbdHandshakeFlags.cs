namespace CowDisk.Format.Nbd;

/// <summary>The server's 16 handshake flags.</summary>
[Flags]
public enum NbdHandshakeFlags : ushort
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
}

/// <summary>The client's 32 flags answering the handshake; any other bit set makes the server hang up.</summary>
[Flags]
public enum NbdClientFlags : uint
{
    None = 0,
    FixedNewstyle = 1 << 0,
    NoZeroes = 1 << 1,
    Known = FixedNewstyle | NoZeroes,
}
