using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// Entries of a refcount block of width 2^refcount_order bits (order 0–6: 1 to 64 bits). Entries of 8 bits and
/// more are big-endian integers; narrower ones are packed into bytes starting from the least significant bit.
/// </summary>
public static class Qcow2RefcountBlock
{
    public const int MaxOrder = 6;

    /// <summary>Entries in one block: cluster_size * 8 / refcount_bits.</summary>
    public static long EntriesPerBlock(int clusterBits, int order)
    {
        CheckOrder(order);
        return (1L << (clusterBits + 3)) >> order;
    }

    /// <summary>The largest refcount an entry of this order holds.</summary>
    public static ulong MaxValue(int order) => order == MaxOrder ? ulong.MaxValue : (1UL << (1 << order)) - 1;

    public static ulong Get(ReadOnlySpan<byte> block, long index, int order)
    {
        CheckOrder(order);
        int bits = 1 << order;
        if (bits < 8)
        {
            long bitIndex = index * bits;
            return (ulong)(block[(int)(bitIndex >> 3)] >> (int)(bitIndex & 7)) & MaxValue(order);
        }
        int at = (int)(index * (bits / 8));
        return bits switch
        {
            8 => block[at],
            16 => BinaryPrimitives.ReadUInt16BigEndian(block[at..]),
            32 => BinaryPrimitives.ReadUInt32BigEndian(block[at..]),
            _ => BinaryPrimitives.ReadUInt64BigEndian(block[at..]),
        };
    }

    public static void Set(Span<byte> block, long index, int order, ulong value)
    {
        CheckOrder(order);
        if (value > MaxValue(order)) throw new ArgumentOutOfRangeException(nameof(value), $"refcount {value} does not fit {1 << order} bits");
        int bits = 1 << order;
        if (bits < 8)
        {
            long bitIndex = index * bits;
            int shift = (int)(bitIndex & 7);
            ref byte b = ref block[(int)(bitIndex >> 3)];
            b = (byte)((b & ~((int)MaxValue(order) << shift)) | ((int)value << shift));
            return;
        }
        int at = (int)(index * (bits / 8));
        switch (bits)
        {
            case 8: block[at] = (byte)value; break;
            case 16: BinaryPrimitives.WriteUInt16BigEndian(block[at..], (ushort)value); break;
            case 32: BinaryPrimitives.WriteUInt32BigEndian(block[at..], (uint)value); break;
            default: BinaryPrimitives.WriteUInt64BigEndian(block[at..], value); break;
        }
    }

    private static void CheckOrder(int order)
    {
        if (order is < 0 or > MaxOrder) throw new ArgumentOutOfRangeException(nameof(order), $"refcount_order {order} is outside 0..{MaxOrder}");
    }
}
