using System.Buffers.Binary;

namespace CowDisk.Format.IoUring;

/// <summary>
/// struct io_uring_params (120 bytes): what io_uring_setup is asked for, and, filled in by the kernel, the ring
/// sizes, the features it has and where the ring fields lie in the mapped memory.
/// </summary>
public readonly record struct IoUringParams(
    uint SqEntries, uint CqEntries, IoUringSetupFlags Flags, IoUringFeatures Features,
    IoUringSqOffsets SqOffsets, IoUringCqOffsets CqOffsets)
{
    public const int EncodedSize = 120;
    public const int SqEntriesOffset = 0;
    public const int CqEntriesOffset = 4;
    public const int FlagsOffset = 8;
    public const int FeaturesOffset = 20;
    public const int SqOffsetsOffset = 40;
    public const int CqOffsetsOffset = 80;

    public static IoUringParams Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[SqEntriesOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[CqEntriesOffset..]),
        (IoUringSetupFlags)BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]),
        (IoUringFeatures)BinaryPrimitives.ReadUInt32LittleEndian(source[FeaturesOffset..]),
        IoUringSqOffsets.Read(source[SqOffsetsOffset..]),
        IoUringCqOffsets.Read(source[CqOffsetsOffset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[SqEntriesOffset..], SqEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[CqEntriesOffset..], CqEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], (uint)Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FeaturesOffset..], (uint)Features);
        SqOffsets.Write(destination[SqOffsetsOffset..]);
        CqOffsets.Write(destination[CqOffsetsOffset..]);
    }
}

/// <summary>struct io_sqring_offsets (40 bytes): byte offsets of the submission ring's fields in its mapping.</summary>
public readonly record struct IoUringSqOffsets(uint Head, uint Tail, uint RingMask, uint RingEntries, uint Flags, uint Dropped, uint Array)
{
    public const int EncodedSize = 40;

    public static IoUringSqOffsets Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[8..]), BinaryPrimitives.ReadUInt32LittleEndian(s[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadUInt32LittleEndian(s[20..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[24..]));

    public void Write(Span<byte> d)
    {
        d[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(d, Head); BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Tail);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], RingMask); BinaryPrimitives.WriteUInt32LittleEndian(d[12..], RingEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(d[16..], Flags); BinaryPrimitives.WriteUInt32LittleEndian(d[20..], Dropped);
        BinaryPrimitives.WriteUInt32LittleEndian(d[24..], Array);
    }
}

/// <summary>struct io_cqring_offsets (40 bytes): byte offsets of the completion ring's fields in its mapping.</summary>
public readonly record struct IoUringCqOffsets(uint Head, uint Tail, uint RingMask, uint RingEntries, uint Overflow, uint Cqes, uint Flags)
{
    public const int EncodedSize = 40;

    public static IoUringCqOffsets Read(ReadOnlySpan<byte> s) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[8..]), BinaryPrimitives.ReadUInt32LittleEndian(s[12..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[16..]), BinaryPrimitives.ReadUInt32LittleEndian(s[20..]),
        BinaryPrimitives.ReadUInt32LittleEndian(s[24..]));

    public void Write(Span<byte> d)
    {
        d[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(d, Head); BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Tail);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], RingMask); BinaryPrimitives.WriteUInt32LittleEndian(d[12..], RingEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(d[16..], Overflow); BinaryPrimitives.WriteUInt32LittleEndian(d[20..], Cqes);
        BinaryPrimitives.WriteUInt32LittleEndian(d[24..], Flags);
    }
}
