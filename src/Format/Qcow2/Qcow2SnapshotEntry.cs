using System.Buffers.Binary;
using System.Text;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// One entry of the snapshot table: a fixed 40-byte part, extra data, the unique id string and the name (neither
/// terminated), padded to a multiple of 8. The extra data is kept as stored; its known fields are
/// <see cref="VmStateSize"/> (64-bit, bytes 0–7), <see cref="VirtualDiskSize"/> (bytes 8–15, required by version 3)
/// and <see cref="InstructionCount"/> (bytes 16–23).
/// </summary>
public sealed record Qcow2SnapshotEntry(
    ulong L1TableOffset, uint L1Size, string Id, string Name, uint DateSeconds, uint DateNanoseconds,
    ulong VmClockNanoseconds, uint VmStateSize32, byte[] ExtraData)
{
    public const int FixedSize = 40;
    public const int L1TableOffsetOffset = 0;
    public const int L1SizeOffset = 8;
    public const int IdLengthOffset = 12;
    public const int NameLengthOffset = 14;
    public const int DateSecondsOffset = 16;
    public const int DateNanosecondsOffset = 20;
    public const int VmClockOffset = 24;
    public const int VmStateSize32Offset = 32;
    public const int ExtraDataSizeOffset = 36;
    /// <summary>Offsets inside the extra data.</summary>
    public const int ExtraVmStateSizeOffset = 0;
    public const int ExtraVirtualDiskSizeOffset = 8;
    public const int ExtraInstructionCountOffset = 16;
    public const int Alignment = 8;

    /// <summary>The 64-bit VM state size when the extra data has it (then the 32-bit field is ignored), else the 32-bit one.</summary>
    public ulong VmStateSize => ExtraData.Length >= ExtraVmStateSizeOffset + 8
        ? BinaryPrimitives.ReadUInt64BigEndian(ExtraData.AsSpan(ExtraVmStateSizeOffset)) : VmStateSize32;

    /// <summary>The snapshot's virtual disk size, when the extra data has it (old version 2 snapshots lack it).</summary>
    public ulong? VirtualDiskSize => ExtraData.Length >= ExtraVirtualDiskSizeOffset + 8
        ? BinaryPrimitives.ReadUInt64BigEndian(ExtraData.AsSpan(ExtraVirtualDiskSizeOffset)) : null;

    public ulong? InstructionCount => ExtraData.Length >= ExtraInstructionCountOffset + 8
        ? BinaryPrimitives.ReadUInt64BigEndian(ExtraData.AsSpan(ExtraInstructionCountOffset)) : null;

    /// <summary>Extra data holding the 64-bit VM state size and the virtual disk size, as version 3 requires.</summary>
    public static byte[] StandardExtraData(ulong vmStateSize, ulong virtualDiskSize)
    {
        var extra = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(extra.AsSpan(ExtraVmStateSizeOffset), vmStateSize);
        BinaryPrimitives.WriteUInt64BigEndian(extra.AsSpan(ExtraVirtualDiskSizeOffset), virtualDiskSize);
        return extra;
    }

    /// <summary>Bytes this entry occupies in the table, padding included.</summary>
    public int EncodedLength => Padded(FixedSize + ExtraData.Length + Encoding.UTF8.GetByteCount(Id) + Encoding.UTF8.GetByteCount(Name));

    /// <summary>The whole entry's length (padding included) from its fixed part, before the rest is read.</summary>
    public static int EncodedLengthOf(ReadOnlySpan<byte> fixedPart)
    {
        if (fixedPart.Length < FixedSize) throw new FormatException($"a qcow2 snapshot entry needs {FixedSize} bytes, got {fixedPart.Length}");
        long length = FixedSize + (long)BinaryPrimitives.ReadUInt32BigEndian(fixedPart[ExtraDataSizeOffset..])
            + BinaryPrimitives.ReadUInt16BigEndian(fixedPart[IdLengthOffset..]) + BinaryPrimitives.ReadUInt16BigEndian(fixedPart[NameLengthOffset..]);
        if (length > int.MaxValue - Alignment) throw new FormatException($"a qcow2 snapshot entry of {length} bytes is too long");
        return Padded((int)length);
    }

    /// <summary>The extra data size a fixed part declares (to bound it before reading the rest).</summary>
    public static uint ExtraDataSizeOf(ReadOnlySpan<byte> fixedPart) => BinaryPrimitives.ReadUInt32BigEndian(fixedPart[ExtraDataSizeOffset..]);

    private static int Padded(int length) => (length + Alignment - 1) & ~(Alignment - 1);

    /// <summary>Parses an entry; <paramref name="length"/> is what it occupies, padding included.</summary>
    public static Qcow2SnapshotEntry Read(ReadOnlySpan<byte> source, out int length)
    {
        length = EncodedLengthOf(source);
        int idLength = BinaryPrimitives.ReadUInt16BigEndian(source[IdLengthOffset..]);
        int nameLength = BinaryPrimitives.ReadUInt16BigEndian(source[NameLengthOffset..]);
        int extraLength = (int)ExtraDataSizeOf(source);
        int used = FixedSize + extraLength + idLength + nameLength;
        if (source.Length < used) throw new FormatException($"a qcow2 snapshot entry needs {used} bytes, got {source.Length}");
        if (source.Length < length) length = used;   // the last entry's padding may be cut off by the caller's slice
        var extra = source.Slice(FixedSize, extraLength);
        var id = source.Slice(FixedSize + extraLength, idLength);
        var name = source.Slice(FixedSize + extraLength + idLength, nameLength);
        return new Qcow2SnapshotEntry(
            BinaryPrimitives.ReadUInt64BigEndian(source[L1TableOffsetOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[L1SizeOffset..]),
            Encoding.UTF8.GetString(id), Encoding.UTF8.GetString(name),
            BinaryPrimitives.ReadUInt32BigEndian(source[DateSecondsOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[DateNanosecondsOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[VmClockOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[VmStateSize32Offset..]),
            extra.ToArray());
    }

    /// <summary>Writes the entry with zeroed padding; returns <see cref="EncodedLength"/>.</summary>
    public int Write(Span<byte> destination)
    {
        int idLength = Encoding.UTF8.GetByteCount(Id), nameLength = Encoding.UTF8.GetByteCount(Name);
        if (idLength > ushort.MaxValue || nameLength > ushort.MaxValue) throw new ArgumentException("a snapshot id or name is at most 65535 bytes");
        int length = EncodedLength;
        destination[..length].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(destination[L1TableOffsetOffset..], L1TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[L1SizeOffset..], L1Size);
        BinaryPrimitives.WriteUInt16BigEndian(destination[IdLengthOffset..], (ushort)idLength);
        BinaryPrimitives.WriteUInt16BigEndian(destination[NameLengthOffset..], (ushort)nameLength);
        BinaryPrimitives.WriteUInt32BigEndian(destination[DateSecondsOffset..], DateSeconds);
        BinaryPrimitives.WriteUInt32BigEndian(destination[DateNanosecondsOffset..], DateNanoseconds);
        BinaryPrimitives.WriteUInt64BigEndian(destination[VmClockOffset..], VmClockNanoseconds);
        BinaryPrimitives.WriteUInt32BigEndian(destination[VmStateSize32Offset..], VmStateSize32);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ExtraDataSizeOffset..], (uint)ExtraData.Length);
        ExtraData.CopyTo(destination[FixedSize..]);
        Encoding.UTF8.GetBytes(Id, destination[(FixedSize + ExtraData.Length)..]);
        Encoding.UTF8.GetBytes(Name, destination[(FixedSize + ExtraData.Length + idLength)..]);
        return length;
    }

    public bool Equals(Qcow2SnapshotEntry? other) =>
        other is not null && L1TableOffset == other.L1TableOffset && L1Size == other.L1Size && Id == other.Id && Name == other.Name &&
        DateSeconds == other.DateSeconds && DateNanoseconds == other.DateNanoseconds && VmClockNanoseconds == other.VmClockNanoseconds &&
        VmStateSize32 == other.VmStateSize32 && ExtraData.AsSpan().SequenceEqual(other.ExtraData);

    public override int GetHashCode() => HashCode.Combine(L1TableOffset, L1Size, Id, Name, DateSeconds, ExtraData.Length);
}
