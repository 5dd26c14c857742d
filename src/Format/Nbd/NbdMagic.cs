namespace CowDisk.Format.Nbd;

/// <summary>The protocol's magic numbers (all big-endian on the wire, as every NBD field).</summary>
public static class NbdMagic
{
    /// <summary>"NBDMAGIC": the server's first eight bytes.</summary>
    public const ulong Server = 0x4e42444d41474943;
    /// <summary>"IHAVEOPT": the newstyle greeting and the prefix of every option the client sends.</summary>
    public const ulong Option = 0x49484156454F5054;
    public const ulong OptionReply = 0x3e889045565a9;
    public const uint Request = 0x25609513;
    public const uint SimpleReply = 0x67446698;
    public const uint StructuredReply = 0x668e33ef;
}
