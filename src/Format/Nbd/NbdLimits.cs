namespace CowDisk.Format.Nbd;

/// <summary>Sizes the protocol fixes or that this server enforces.</summary>
public static class NbdLimits
{
    /// <summary>The protocol's limit on names, queries and messages.</summary>
    public const int MaxString = 4096;
    /// <summary>The largest READ or WRITE payload the server accepts (advertised in NBD_INFO_BLOCK_SIZE).</summary>
    public const int MaxPayload = 32 << 20;
    /// <summary>Option data beyond this is not read into memory: the connection is closed.</summary>
    public const int MaxOptionData = 64 << 10;
    /// <summary>Zero bytes after NBD_OPT_EXPORT_NAME's reply unless the client negotiated NO_ZEROES.</summary>
    public const int ExportNamePadding = 124;
    /// <summary>Block status descriptors per reply chunk, as the protocol recommends at most.</summary>
    public const int MaxExtentsPerChunk = 1 << 20;
}
