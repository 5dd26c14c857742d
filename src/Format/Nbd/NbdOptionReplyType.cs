namespace CowDisk.Format.Nbd;

/// <summary>The server's answers to options; errors have bit 31 set.</summary>
public enum NbdOptionReplyType : uint
{
    Ack = 1,
    Server = 2,
    Info = 3,
    MetaContext = 4,
    ErrorUnsupported = 0x8000_0001,
    ErrorPolicy = 0x8000_0002,
    ErrorInvalid = 0x8000_0003,
    ErrorPlatform = 0x8000_0004,
    ErrorTlsRequired = 0x8000_0005,
    ErrorUnknown = 0x8000_0006,
    ErrorShutdown = 0x8000_0007,
    ErrorBlockSizeRequired = 0x8000_0008,
    ErrorTooBig = 0x8000_0009,
}
