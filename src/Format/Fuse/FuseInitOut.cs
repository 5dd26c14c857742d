using System.Buffers.Binary;

namespace CowDisk.Format.Fuse;

/// <summary>fuse_init_out: the server's answer to INIT — version, accepted capabilities and size limits.</summary>
public readonly record struct FuseInitOut(
    uint Major, uint Minor, uint MaxReadahead, FuseInitFlags Flags, ushort MaxBackground,
    ushort CongestionThreshold, uint MaxWrite, uint TimeGranularity, ushort MaxPages, uint Flags2)
{
    /// <summary>Size of the reply since protocol 7.23.</summary>
    public const int EncodedSize = 64;
    public const int MajorOffset = 0;
    public const int MinorOffset = 4;
    public const int MaxReadaheadOffset = 8;
    public const int FlagsOffset = 12;
    public const int MaxBackgroundOffset = 16;
    public const int CongestionThresholdOffset = 18;
    public const int MaxWriteOffset = 20;
    public const int TimeGranularityOffset = 24;
    public const int MaxPagesOffset = 28;
    public const int MapAlignmentOffset = 30;
    public const int Flags2Offset = 32;

    public static FuseInitOut Read(ReadOnlySpan<byte> source) => new(
        BinaryPrimitives.ReadUInt32LittleEndian(source[MajorOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MinorOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MaxReadaheadOffset..]),
        (FuseInitFlags)BinaryPrimitives.ReadUInt32LittleEndian(source[FlagsOffset..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[MaxBackgroundOffset..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[CongestionThresholdOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[MaxWriteOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[TimeGranularityOffset..]),
        BinaryPrimitives.ReadUInt16LittleEndian(source[MaxPagesOffset..]),
        BinaryPrimitives.ReadUInt32LittleEndian(source[Flags2Offset..]));

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MajorOffset..], Major);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MinorOffset..], Minor);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MaxReadaheadOffset..], MaxReadahead);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[FlagsOffset..], (uint)Flags);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[MaxBackgroundOffset..], MaxBackground);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[CongestionThresholdOffset..], CongestionThreshold);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[MaxWriteOffset..], MaxWrite);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[TimeGranularityOffset..], TimeGranularity);
        BinaryPrimitives.WriteUInt16LittleEndian(destination[MaxPagesOffset..], MaxPages);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[Flags2Offset..], Flags2);
    }
}
