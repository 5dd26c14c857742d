using System.Globalization;
using System.Text.RegularExpressions;

namespace CowDisk.Cli;

/// <summary>Sizes and offsets as users type them: plain bytes or a binary suffix (512, 64K, 1M, 10G, 1T).</summary>
public static class ByteSize
{
    public static long Parse(string text, string what = "size")
    {
        if (!TryParse(text, out long value))
            throw new CliException($"invalid {what} '{text}' (use bytes or a K/M/G/T/P suffix, e.g. 64K, 10G)");
        return value;
    }

    private static readonly Regex Pattern = new(@"^(?<n>[0-9]+)\s*(?<u>[KMGTP])?(?:i?B)?$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    public static bool TryParse(string? text, out long value)
    {
        value = 0;
        var m = Pattern.Match(text?.Trim() ?? "");
        if (!m.Success || !long.TryParse(m.Groups["n"].Value, NumberStyles.None, CultureInfo.InvariantCulture, out long number)) return false;
        int shift = m.Groups["u"].Success ? 10 * ("KMGTP".IndexOf(char.ToUpperInvariant(m.Groups["u"].Value[0])) + 1) : 0;
        if (number > (long.MaxValue >> shift)) return false;
        value = number << shift;
        return true;
    }

    /// <summary>Human form, as qemu-img prints it: "1 GiB", "64 KiB", "1.5 MiB".</summary>
    public static string Format(long bytes)
    {
        string[] units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = bytes;
        int u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : v % 1 == 0 ? $"{v:0} {units[u]}" : $"{v:0.##} {units[u]}";
    }
}
