using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// A standard L2 table entry as stored (the first 64 bits of an extended one). Bit 62 marks a compressed cluster,
/// bit 63 a refcount of exactly one. A standard cluster descriptor has the zero flag in bit 0 (version 3 without
/// extended L2 only) and the host offset in bits 9–55; a compressed one has the host offset in bits 0..x-1 and
/// the number of additional 512-byte sectors in bits x..61, where x = 62 - (cluster_bits - 8).
/// <see cref="Decode"/> turns the bits into a <see cref="Qcow2ClusterMapping"/>.
/// </summary>
public readonly record struct Qcow2L2Entry(ulong Raw)
{
    public const int EncodedSize = 8;
    public const ulong ZeroFlag = 1UL << 0;
    /// <summary>Bits 9–55 of a standard descriptor.</summary>
    public const ulong OffsetMask = 0x00FF_FFFF_FFFF_FE00UL;
    public const ulong CompressedFlag = 1UL << 62;
    public const ulong CopiedFlag = 1UL << 63;
    /// <summary>Bits 1–8 and 56–61 of a standard descriptor.</summary>
    public const ulong StandardReservedMask = 0x3F00_0000_0000_01FEUL;

    public bool IsCompressed => (Raw & CompressedFlag) != 0;
    public bool Copied => (Raw & CopiedFlag) != 0;
    /// <summary>The zero flag of a standard descriptor (meaningless when compressed or with extended L2).</summary>
    public bool ZeroFlagSet => (Raw & ZeroFlag) != 0;
    /// <summary>The host offset field of a standard descriptor.</summary>
    public ulong StandardOffset => Raw & OffsetMask;
    public ulong StandardReservedBits => IsCompressed ? 0 : Raw & StandardReservedMask;

    /// <summary>x of the spec: where the sector count of a compressed descriptor starts.</summary>
    public static int CompressedSectorShift(int clusterBits) => 62 - (clusterBits - 8);

    /// <summary>
    /// The mapping this entry describes. Standard: the zero flag wins (version 3 without extended L2: the caller
    /// passes <paramref name="extendedL2"/> so that bit 0 is ignored there), then offset 0 is unallocated.
    /// Compressed: host offset and sector count by the x rule.
    /// </summary>
    public Qcow2ClusterMapping Decode(int clusterBits, bool extendedL2)
    {
        if (IsCompressed)
        {
            int x = CompressedSectorShift(clusterBits);
            ulong offset = Raw & ((1UL << x) - 1);
            ulong additional = (Raw >> x) & ((1UL << (62 - x)) - 1);
            return new(Qcow2ClusterKind.Compressed, offset, (uint)additional + 1);
        }
        if (!extendedL2 && ZeroFlagSet) return new(Qcow2ClusterKind.Zero, StandardOffset);
        return StandardOffset == 0 ? Qcow2ClusterMapping.Unallocated : new(Qcow2ClusterKind.Standard, StandardOffset);
    }

    public static Qcow2L2Entry Unallocated => new(0);

    public static Qcow2L2Entry Standard(ulong hostOffset, bool copied = true)
    {
        if ((hostOffset & ~OffsetMask) != 0 || hostOffset == 0) throw new ArgumentOutOfRangeException(nameof(hostOffset), $"host offset 0x{hostOffset:x} does not fit bits 9-55");
        return new(hostOffset | (copied ? CopiedFlag : 0));
    }

    /// <summary>A zero cluster (version 3), optionally keeping a preallocated host cluster.</summary>
    public static Qcow2L2Entry Zero(ulong preallocatedOffset = 0, bool copied = false)
    {
        if ((preallocatedOffset & ~OffsetMask) != 0) throw new ArgumentOutOfRangeException(nameof(preallocatedOffset), $"host offset 0x{preallocatedOffset:x} does not fit bits 9-55");
        return new(preallocatedOffset | ZeroFlag | (copied ? CopiedFlag : 0));
    }

    /// <param name="sectors">Sectors touched by the compressed data, at least 1 (the one holding the offset).</param>
    public static Qcow2L2Entry Compressed(ulong hostOffset, uint sectors, int clusterBits)
    {
        int x = CompressedSectorShift(clusterBits);
        if (hostOffset >= 1UL << x) throw new ArgumentOutOfRangeException(nameof(hostOffset), $"compressed host offset 0x{hostOffset:x} does not fit {x} bits");
        if (sectors == 0 || sectors - 1 >= 1UL << (62 - x)) throw new ArgumentOutOfRangeException(nameof(sectors), $"{sectors} sectors do not fit {62 - x} bits");
        return new(CompressedFlag | hostOffset | ((ulong)(sectors - 1) << x));
    }

    public static Qcow2L2Entry Read(ReadOnlySpan<byte> source) => new(BinaryPrimitives.ReadUInt64BigEndian(source));

    public void Write(Span<byte> destination) => BinaryPrimitives.WriteUInt64BigEndian(destination, Raw);
}
