using System.Buffers.Binary;

namespace CowDisk.Format.Ring;

/// <summary>
/// One 64-byte ring slot, little-endian (shared memory between two parties on one host).
/// The status word at offset 0 belongs to the ring: producers write it last (release), consumers read it
/// first (acquire) and clear it. <see cref="Write"/> and <see cref="Read"/> never touch it.
/// </summary>
public record struct RingEvent
{
    public const int StatusOffset = 0;        // u32: 0 empty, 1 full
    public const int TypeOffset = 4;          // u16 RingEventType
    public const int FlagsOffset = 6;         // u16 MapRequestFlags or MapResponseFlags
    public const int IdOffset = 8;            // u64 request id, echoed in RSP and DONE
    public const int BlockOffset = 16;        // u64 first virtual block
    public const int CountOffset = 24;        // u32 blocks (RSP: how many of the requested it covers)
    public const int ResultOffset = 28;       // i32 DONE/FLUSH_RSP/error: 0 or -errno
    public const int DeviceOffset = 32;       // u16 device index (0 data file, 1 base)
    public const int SourceDeviceOffset = 34; // u16 COPY_FIRST source device
    public const int ReservedOffset = 36;     // u32, zero
    public const int DeviceBlockOffset = 40;  // u64 block on the device
    public const int SourceBlockOffset = 48;  // u64 COPY_FIRST source block
    public const int MaskOffset = 56;         // u64 subcluster mask (LAYERED responses; a write request: the subclusters it touches)
    public const int Size = 64;

    public RingEventType Type;
    public ushort Flags;
    public ulong Id;
    public long Block;
    public int Count;
    public int Result;
    public ushort Device;
    public ushort SourceDevice;
    public long DeviceBlock;
    public long SourceBlock;
    public ulong Mask;

    public MapRequestFlags RequestFlags { readonly get => (MapRequestFlags)Flags; set => Flags = (ushort)value; }
    public MapResponseFlags ResponseFlags { readonly get => (MapResponseFlags)Flags; set => Flags = (ushort)value; }

    /// <summary>Writes every field but the status word.</summary>
    public readonly void Write(Span<byte> slot)
    {
        if (slot.Length < Size) throw new ArgumentException("ring slot too small", nameof(slot));
        BinaryPrimitives.WriteUInt16LittleEndian(slot[TypeOffset..], (ushort)Type);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[FlagsOffset..], Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[IdOffset..], Id);
        BinaryPrimitives.WriteInt64LittleEndian(slot[BlockOffset..], Block);
        BinaryPrimitives.WriteInt32LittleEndian(slot[CountOffset..], Count);
        BinaryPrimitives.WriteInt32LittleEndian(slot[ResultOffset..], Result);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[DeviceOffset..], Device);
        BinaryPrimitives.WriteUInt16LittleEndian(slot[SourceDeviceOffset..], SourceDevice);
        BinaryPrimitives.WriteUInt32LittleEndian(slot[ReservedOffset..], 0);
        BinaryPrimitives.WriteInt64LittleEndian(slot[DeviceBlockOffset..], DeviceBlock);
        BinaryPrimitives.WriteInt64LittleEndian(slot[SourceBlockOffset..], SourceBlock);
        BinaryPrimitives.WriteUInt64LittleEndian(slot[MaskOffset..], Mask);
    }

    /// <summary>Reads every field but the status word; throws <see cref="FormatException"/> on an unknown type.</summary>
    public static RingEvent Read(ReadOnlySpan<byte> slot)
    {
        if (slot.Length < Size) throw new FormatException("truncated ring slot");
        if (!TryRead(slot, out var ev)) throw new FormatException($"unknown ring event type {(ushort)ev.Type}");
        return ev;
    }

    /// <summary>
    /// Reads every field but the status word. False if the type is unknown: the fields are read all the same
    /// (<see cref="Type"/> holds the raw value), so a consumer can still answer the slot by its id.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> slot, out RingEvent ev)
    {
        if (slot.Length < Size) throw new ArgumentException("ring slot too small", nameof(slot));
        ev = new RingEvent
        {
            Type = (RingEventType)BinaryPrimitives.ReadUInt16LittleEndian(slot[TypeOffset..]),
            Flags = BinaryPrimitives.ReadUInt16LittleEndian(slot[FlagsOffset..]),
            Id = BinaryPrimitives.ReadUInt64LittleEndian(slot[IdOffset..]),
            Block = BinaryPrimitives.ReadInt64LittleEndian(slot[BlockOffset..]),
            Count = BinaryPrimitives.ReadInt32LittleEndian(slot[CountOffset..]),
            Result = BinaryPrimitives.ReadInt32LittleEndian(slot[ResultOffset..]),
            Device = BinaryPrimitives.ReadUInt16LittleEndian(slot[DeviceOffset..]),
            SourceDevice = BinaryPrimitives.ReadUInt16LittleEndian(slot[SourceDeviceOffset..]),
            DeviceBlock = BinaryPrimitives.ReadInt64LittleEndian(slot[DeviceBlockOffset..]),
            SourceBlock = BinaryPrimitives.ReadInt64LittleEndian(slot[SourceBlockOffset..]),
            Mask = BinaryPrimitives.ReadUInt64LittleEndian(slot[MaskOffset..]),
        };
        return ev.Type is > RingEventType.None and <= RingEventType.ControlRsp;
    }
}
