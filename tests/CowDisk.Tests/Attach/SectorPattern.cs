using System.Runtime.InteropServices;

namespace CowDisk.Tests.Attach;

/// <summary>
/// The content a write puts in one 4 KiB sector: the sector's index and the write's generation in the first 16
/// bytes, then a xorshift stream seeded from both. Generation 0 means all zeros (never written, or discarded).
/// A sector read back is either zeros, exactly one (index, generation) pattern, or something else; the header
/// names the write it came from, so "another sector's data" is told from "torn or garbage".
/// </summary>
public static class SectorPattern
{
    public const int Size = 4096;

    public static void Fill(Span<byte> sector, long index, long generation)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(sector[..Size]);
        if (generation == 0) { words.Clear(); return; }
        words[0] = (ulong)index;
        words[1] = (ulong)generation;
        ulong x = Seed(index, generation);
        for (int i = 2; i < words.Length; i++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words[i] = x;
        }
    }

    public enum Kind { Zeros, Pattern, OtherSector, Garbage }

    /// <summary>What a sector read back holds. For Pattern and OtherSector, which (index, generation) wrote it.</summary>
    public readonly record struct Decoded(Kind Kind, long Index, long Generation)
    {
        public override string ToString() => Kind switch
        {
            Kind.Zeros => "zeros",
            Kind.Pattern => $"generation {Generation}",
            Kind.OtherSector => $"sector {Index}'s data (generation {Generation})",
            _ => $"garbage (header index {Index}, generation {Generation})",
        };
    }

    /// <summary>Decodes sector index's content; scratch is a 4 KiB work area.</summary>
    public static Decoded Decode(ReadOnlySpan<byte> sector, long index, Span<byte> scratch)
    {
        sector = sector[..Size];
        if (!sector.ContainsAnyExcept((byte)0)) return new Decoded(Kind.Zeros, index, 0);
        var words = MemoryMarshal.Cast<byte, ulong>(sector);
        long claimedIndex = (long)words[0], generation = (long)words[1];
        if (generation <= 0) return new Decoded(Kind.Garbage, claimedIndex, generation);
        Fill(scratch, claimedIndex, generation);
        if (!sector.SequenceEqual(scratch[..Size])) return new Decoded(Kind.Garbage, claimedIndex, generation);
        return new Decoded(claimedIndex == index ? Kind.Pattern : Kind.OtherSector, claimedIndex, generation);
    }

    private static ulong Seed(long index, long generation)
    {
        ulong x = (ulong)index * 0x9E3779B97F4A7C15UL ^ (ulong)generation * 0xC2B2AE3D27D4EB4FUL;
        x ^= x >> 31;
        x *= 0xBF58476D1CE4E5B9UL;
        x ^= x >> 29;
        return x == 0 ? 0x2545F4914F6CDD1DUL : x;
    }
}
