using System.Buffers.Binary;
using System.Numerics;

namespace CowDisk.Format.Ring;

/// <summary>
/// The shared region: one header page, then the target→responder ring, then the responder→target ring.
/// Each ring is SlotCount slots of 64 bytes; 64 slots fill a 4 KiB page exactly, so no slot straddles a page.
/// </summary>
public readonly record struct RingLayout(int SlotCount)
{
    public const int PageSize = 4096;
    public const int SlotsPerPage = PageSize / RingEvent.Size;
    public const int MinSlots = SlotsPerPage;
    public const int MaxSlots = 1 << 16;

    public const int MagicOffset = 0;      // 8 bytes "CDRING\0\0"
    public const int VersionOffset = 8;    // u32
    public const int SlotCountOffset = 12; // u32
    public const int SlotSizeOffset = 16;  // u32, 64
    public const int HeaderSize = 20;
    public const uint CurrentVersion = 1;
    public static ReadOnlySpan<byte> Magic => "CDRING\0\0"u8;

    public int RingBytes => SlotCount * RingEvent.Size;
    public int RequestRingOffset => PageSize;
    public int ResponseRingOffset => PageSize + RingBytes;
    public int TotalBytes => PageSize + 2 * RingBytes;

    public static bool IsValidSlotCount(int slots) => slots >= MinSlots && slots <= MaxSlots && BitOperations.IsPow2(slots);

    /// <summary>Byte offset of a slot from the start of its ring.</summary>
    public static int SlotOffset(int index) => index * RingEvent.Size;

    public void WriteHeader(Span<byte> page)
    {
        Magic.CopyTo(page[MagicOffset..]);
        BinaryPrimitives.WriteUInt32LittleEndian(page[VersionOffset..], CurrentVersion);
        BinaryPrimitives.WriteUInt32LittleEndian(page[SlotCountOffset..], (uint)SlotCount);
        BinaryPrimitives.WriteUInt32LittleEndian(page[SlotSizeOffset..], RingEvent.Size);
    }

    public static RingLayout ReadHeader(ReadOnlySpan<byte> page)
    {
        if (page.Length < HeaderSize || !page[..8].SequenceEqual(Magic)) throw new FormatException("not a cowdisk ring (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(page[VersionOffset..]);
        if (version != CurrentVersion) throw new FormatException($"unsupported ring version {version}");
        uint slots = BinaryPrimitives.ReadUInt32LittleEndian(page[SlotCountOffset..]);
        uint slotSize = BinaryPrimitives.ReadUInt32LittleEndian(page[SlotSizeOffset..]);
        if (slotSize != RingEvent.Size) throw new FormatException($"ring slot size {slotSize}, expected {RingEvent.Size}");
        if (slots > MaxSlots || !IsValidSlotCount((int)slots)) throw new FormatException($"bad ring slot count {slots}");
        return new RingLayout((int)slots);
    }
}
