namespace CowDisk.Format.Fuse;

/// <summary>
/// struct fuse_uring_req_header (288 bytes): the fixed part of a FUSE-over-io_uring ring entry, the first of its
/// two buffers. On a request: fuse_in_header at <see cref="InOutOffset"/>, the opcode's own argument struct
/// (fuse_read_in, fuse_write_in, a LOOKUP's name...) at <see cref="OpInOffset"/>, and the entry's
/// <see cref="FuseUringEntInOut"/> at <see cref="EntInOutOffset"/>; anything further (WRITE data) is in the
/// second buffer, the payload. On a reply: fuse_out_header at <see cref="InOutOffset"/>, the reply body in the
/// payload buffer and its length in the EntInOut's PayloadSize.
/// </summary>
public static class FuseUringHeader
{
    public const int InOutOffset = 0;
    public const int InOutSize = 128;
    public const int OpInOffset = 128;
    public const int OpInSize = 128;
    public const int EntInOutOffset = 256;
    public const int EncodedSize = EntInOutOffset + FuseUringEntInOut.EncodedSize;
}
