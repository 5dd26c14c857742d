using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_in_header: the 40 bytes in front of every request the kernel sends.</summary>
public readonly record struct FuseInHeader(
    uint Length, FuseOpcode Opcode, ulong Unique, ulong NodeId, uint Uid, uint Gid, uint Pid, ushort ExtensionWords)
{
    public const int EncodedSize = 40;
    public const int LengthOffset = 0;
    public const int OpcodeOffset = 4;
    public const int UniqueOffset = 8;
    public const int NodeIdOffset = 16;
    public const int UidOffset = 24;
    public const int GidOffset = 28;
    public const int PidOffset = 32;
    public const int ExtensionWordsOffset = 36;

    /// <summary>Bytes of request extensions (security context, supplementary groups) after the argument.</summary>
    public int ExtensionBytes => ExtensionWords * 8;

    public static FuseInHeader Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[LengthOffset..]),
        (FuseOpcode)BinaryPrimitives.ReadUInt32LittleEndian(source[OpcodeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[UniqueOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[NodeIdOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[UidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[GidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[PidOffset..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[ExtensionWordsOffset..]));

    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination[LengthOffset..], Length);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[OpcodeOffset..], (uint)Opcode);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[UniqueOffset..], Unique);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[NodeIdOffset..], NodeId);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[UidOffset..], Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[GidOffset..], Gid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[PidOffset..], Pid);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[ExtensionWordsOffset..], ExtensionWords);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[(ExtensionWordsOffset + 2)..], 0);
    }
}
