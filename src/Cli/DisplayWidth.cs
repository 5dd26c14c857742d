using System.Globalization;

namespace CowDisk.Cli;

/// <summary>Columns a string takes on a terminal: East Asian wide characters take two, so tables stay aligned.</summary>
public static class DisplayWidth
{
    public static int Of(string text)
    {
        int width = 0;
        var e = StringInfo.GetTextElementEnumerator(text);
        while (e.MoveNext())
        {
            int cp = char.ConvertToUtf32((string)e.Current, 0);
            width += cp is >= 0x1100 and <= 0x115F or >= 0x2E80 and <= 0xA4CF or >= 0xAC00 and <= 0xD7A3 or >= 0xF900 and <= 0xFAFF
                or >= 0xFE30 and <= 0xFE4F or >= 0xFF00 and <= 0xFF60 or >= 0xFFE0 and <= 0xFFE6 or >= 0x1F300 and <= 0x1FAFF
                or >= 0x20000 and <= 0x3FFFD ? 2 : 1;
        }
        return width;
    }

    /// <summary>Pads on the right to the given columns (never cuts).</summary>
    public static string PadRight(string text, int columns) => text + new string(' ', Math.Max(0, columns - Of(text)));
}
