namespace CowDisk.Format.Nbd;

/// <summary>The kinds of NBD_REP_INFO a client may ask for with OPT_INFO / OPT_GO.</summary>
public enum NbdInfoType : ushort
{
    Export = 0,
    Name = 1,
    Description = 2,
    BlockSize = 3,
}
