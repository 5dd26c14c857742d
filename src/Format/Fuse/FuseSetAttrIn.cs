using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_setattr_in: SETATTR's argument (88 bytes); only the fields named in Valid matter.</summary>
public readonly record struct FuseSetAttrIn(
    FuseSetAttrValid Valid, ulong FileHandle, ulong Size, ulong LockOwner, ulong AccessTime, ulong ModifyTime,
    ulong ChangeTime, uint AccessTimeNanoseconds, uint ModifyTimeNanoseconds, uint ChangeTimeNanoseconds,
    uint Mode, uint Uid, uint Gid)
{
    public const int EncodedSize = 88;
    public const int ValidOffset = 0;
    public const int FileHandleOffset = 8;
    public const int SizeOffset = 16;
    public const int LockOwnerOffset = 24;
    public const int AccessTimeOffset = 32;
    public const int ModifyTimeOffset = 40;
    public const int ChangeTimeOffset = 48;
    public const int AccessTimeNanosecondsOffset = 56;
    public const int ModifyTimeNanosecondsOffset = 60;
    public const int ChangeTimeNanosecondsOffset = 64;
    public const int ModeOffset = 68;
    public const int UidOffset = 76;
    public const int GidOffset = 80;

    public static FuseSetAttrIn Read(ReadOnlySpan<byte> source) => new(
        (FuseSetAttrValid)BinaryPrimitives.ReadUInt32LittleEndian(source[ValidOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[FileHandleOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[SizeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[LockOwnerOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[AccessTimeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[ModifyTimeOffset..]),
        BinaryPrimitives.ReadUInt64LittleEndian(source[ChangeTimeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[AccessTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ModifyTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ChangeTimeNanosecondsOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[ModeOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[UidOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[GidOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ValidOffset..], (uint)Valid);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[FileHandleOffset..], FileHandle);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[SizeOffset..], Size);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[LockOwnerOffset..], LockOwner);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[AccessTimeOffset..], AccessTime);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[ModifyTimeOffset..], ModifyTime);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[ChangeTimeOffset..], ChangeTime);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[AccessTimeNanosecondsOffset..], AccessTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ModifyTimeNanosecondsOffset..], ModifyTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ChangeTimeNanosecondsOffset..], ChangeTimeNanoseconds);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[ModeOffset..], Mode);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[UidOffset..], Uid);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[GidOffset..], Gid);
    }
}
