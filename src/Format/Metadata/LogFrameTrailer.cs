using System.Buffers.Binary;
using System.Numerics;

namespace CowDisk.Format.Metadata;

/// <summary>
/// The trailer after each 8 KiB LiteDB page in the metadata log (<c>IMAGE.meta.log</c>). LiteDB 5.0.21's log
/// pages carry no checksums, so a commit torn by power loss could replay half a transaction; each frame here
/// is a page plus this trailer, and the log is trusted only up to the first frame that does not check out.
/// Big-endian like the data-file header. See docs/FORMAT.md.
/// </summary>
public readonly record struct LogFrameTrailer(Guid ImageId, ulong Generation, long FrameIndex, uint PageChecksum)
{
    public static ReadOnlySpan<byte> Magic => "CDLOGFR1"u8;

    public const int PageSize = 8192;             // LiteDB's page size
    public const int Size = 512;                  // one sector: a trailer never shares a sector with page bytes
    public const int FrameSize = PageSize + Size;

    public const int MagicOffset = 0;             // 8 bytes "CDLOGFR1"
    public const int ImageIdOffset = 8;           // 16 bytes, RFC 4122 big-endian byte order
    public const int GenerationOffset = 24;       // u64: changes each time the log is emptied
    public const int FrameIndexOffset = 32;       // u64: this frame's position in the log, in frames
    public const int PageChecksumOffset = 40;     // u32 CRC-32C of the page's 8192 bytes
    public const int ChecksumOffset = 44;         // u32 CRC-32C of trailer bytes [0, 44)
    public const int UsedBytes = 48;              // the rest of the sector is zero

    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException("trailer buffer too small", nameof(destination));
        destination[..Size].Clear();
        Magic.CopyTo(destination[MagicOffset..]);
        ImageId.TryWriteBytes(destination.Slice(ImageIdOffset, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt64BigEndian(destination[GenerationOffset..], Generation);
        BinaryPrimitives.WriteUInt64BigEndian(destination[FrameIndexOffset..], (ulong)FrameIndex);
        BinaryPrimitives.WriteUInt32BigEndian(destination[PageChecksumOffset..], PageChecksum);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ChecksumOffset..], Crc32C(destination[..ChecksumOffset]));
    }

    /// <summary>True if the bytes start with the magic (a frame written by cowdisk, whole or not).</summary>
    public static bool HasMagic(ReadOnlySpan<byte> source) =>
        source.Length >= Magic.Length && source[..Magic.Length].SequenceEqual(Magic);

    /// <summary>Parses a trailer; false if it is missing, torn or damaged (its own checksum fails).</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out LogFrameTrailer trailer)
    {
        trailer = default;
        if (source.Length < Size || !HasMagic(source)) return false;
        if (BinaryPrimitives.ReadUInt32BigEndian(source[ChecksumOffset..]) != Crc32C(source[..ChecksumOffset])) return false;
        trailer = new LogFrameTrailer(
            new Guid(source.Slice(ImageIdOffset, 16), bigEndian: true),
            BinaryPrimitives.ReadUInt64BigEndian(source[GenerationOffset..]),
            (long)BinaryPrimitives.ReadUInt64BigEndian(source[FrameIndexOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[PageChecksumOffset..]));
        return true;
    }

    /// <summary>CRC-32C (Castagnoli), hardware-accelerated where the CPU has it.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        while (bytes.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(bytes));
            bytes = bytes[8..];
        }
        foreach (byte b in bytes) crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }
}
