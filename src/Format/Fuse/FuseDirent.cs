using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_dirent: one READDIR entry — 24 bytes of header, the name, padding to 8 bytes.</summary>
public static class FuseDirent
{
    public const int HeaderSize = 24;
    public const int InodeOffset = 0;
    public const int NextOffsetOffset = 8;
    public const int NameLengthOffset = 16;
    public const int TypeOffset = 20;
    public const int NameOffset = 24;

    /// <summary>d_type values (DT_DIR, DT_REG).</summary>
    public const uint DirectoryType = 4;
    public const uint RegularFileType = 8;

    public static int EncodedSize(int nameLength) => (HeaderSize + nameLength + 7) & ~7;

    /// <summary>Encodes an entry; nextOffset is the READDIR offset that resumes after it. Returns bytes used.</summary>
    public static int Write(Span<byte> destination, ulong inode, ulong nextOffset, uint type, ReadOnlySpan<byte> name)
    {
        int size = EncodedSize(name.Length);
        destination[..size].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination[InodeOffset..], inode);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[NextOffsetOffset..], nextOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[NameLengthOffset..], (uint)name.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[TypeOffset..], type);
        name.CopyTo(destination[NameOffset..]);
        return size;
    }
}
