using System.Globalization;
using System.Text;

namespace CowDisk.Bench;

/// <summary>Collects measurements and prints them as one plain, aligned table.</summary>
internal sealed class Report
{
    private readonly List<object> _rows = new();   // string = section title, Measurement = row
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private string _section = "";

    public void Section(string title)
    {
        _rows.Add(title);
        _section = title;
        Console.Error.WriteLine($"[bench {_clock.Elapsed.TotalSeconds,5:0.0}s] {title}");
    }

    public Measurement Add(Measurement m)
    {
        m.Section = _section;
        _rows.Add(m);
        Console.Error.WriteLine($"[bench]   {m.Name} ({m.Kind}, {m.Threads} thr): {Fmt(m.Rate, m.Unit)} {m.Unit} in {m.Seconds:0.000} s");
        return m;
    }

    private static readonly string[] Header =
    [
        "phase", "kind", "thr", "ops", "secs", "rate", "unit", "x base", "rate w/o flush", "x base", "flush ms",
        "ring calls", "p50 us", "p99 us", "max us", "cpu us/op", "csw/op", "wr KiB/op", "alloc B/op", "RSS MiB (heap kept)",
    ];

    private static readonly bool[] RightAligned = [false, false, .. Enumerable.Repeat(true, 4), false, .. Enumerable.Repeat(true, 13)];

    public string Render()
    {
        var lines = new List<string[]?>();
        var sections = new Dictionary<int, string>();
        foreach (var row in _rows)
        {
            if (row is string title) { sections[lines.Count] = title; lines.Add(null); continue; }
            lines.Add(Cells((Measurement)row));
        }
        var widths = Header.Select(h => h.Length).ToArray();
        foreach (var cells in lines.OfType<string[]>())
            for (int i = 0; i < cells.Length; i++) widths[i] = Math.Max(widths[i], cells[i].Length);

        var sb = new StringBuilder();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => RightAligned[i] ? c.PadLeft(widths[i]) : c.PadRight(widths[i]))).TrimEnd();
        string head = Line(Header);
        sb.AppendLine(head);
        sb.AppendLine(new string('-', head.Length));
        for (int i = 0; i < lines.Count; i++)
        {
            if (lines[i] is { } cells) sb.AppendLine(Line(cells));
            else
            {
                if (i > 0) sb.AppendLine();
                sb.AppendLine(sections[i]);
            }
        }
        return sb.ToString();
    }

    private static string[] Cells(Measurement m)
    {
        bool single = m.Latency.Count <= 1;
        // Per-op figures divide by the ops actually timed; a one-shot row (an open) divides by its items (extents).
        double ops = single ? Math.Max(1, m.Ops) : m.Latency.Count;
        string Ratio(double a, double? b) => b is > 0 ? (a / b.Value).ToString("0.00", CultureInfo.InvariantCulture) : "";
        return
        [
            m.Name,
            m.Kind,
            m.Threads.ToString(CultureInfo.InvariantCulture),
            m.Ops.ToString("N0", CultureInfo.InvariantCulture),
            m.Seconds.ToString("0.000", CultureInfo.InvariantCulture),
            Fmt(m.Rate, m.Unit),
            m.Unit,
            Ratio(m.Rate, m.Baseline?.Rate),
            m.FinishSeconds > 0 ? Fmt(m.RateWithoutFinish, m.Unit) : "",
            m.FinishSeconds > 0 ? Ratio(m.RateWithoutFinish, m.Baseline?.RateWithoutFinish) : "",
            m.FinishSeconds > 0 ? (m.FinishSeconds * 1000).ToString("0.0", CultureInfo.InvariantCulture) : "",
            m.RingCalls?.ToString("N0", CultureInfo.InvariantCulture) ?? "-",
            single ? "" : Runner.Micros(m.Latency.Quantile(0.50)).ToString("0.0", CultureInfo.InvariantCulture),
            single ? "" : Runner.Micros(m.Latency.Quantile(0.99)).ToString("0.0", CultureInfo.InvariantCulture),
            single ? "" : Runner.Micros(m.Latency.Max).ToString("0", CultureInfo.InvariantCulture),
            (m.Stats.CpuSeconds * 1e6 / ops).ToString("0.0", CultureInfo.InvariantCulture),
            ((m.Stats.VoluntarySwitches + m.Stats.InvoluntarySwitches) / ops).ToString("0.00", CultureInfo.InvariantCulture),
            (m.Stats.WriteBytes / 1024.0 / ops).ToString("0.0", CultureInfo.InvariantCulture),
            (m.Stats.AllocatedBytes / ops).ToString("0.0", CultureInfo.InvariantCulture),
            m.RssMiB is { } rss
                ? (m.HeapRetainedMiB is { } kept ? FormattableString.Invariant($"{rss:0} ({kept:0})") : FormattableString.Invariant($"{rss:0}"))
                : "",
        ];
    }

    /// <summary>Every row as plain data, for --json: the figures the table shows, unrounded.</summary>
    public IEnumerable<Dictionary<string, object?>> Rows() => _rows.OfType<Measurement>().Select(m => new Dictionary<string, object?>
    {
        ["section"] = m.Section,
        ["name"] = m.Name,
        ["kind"] = m.Kind,
        ["threads"] = m.Threads,
        ["ops"] = m.Ops,
        ["seconds"] = m.Seconds,
        ["rate"] = m.Rate,
        ["unit"] = m.Unit,
        ["baseline_rate"] = m.Baseline?.Rate,
        ["ratio"] = m.Baseline is { Rate: > 0 } b ? m.Rate / b.Rate : null,
        ["rate_without_flush"] = m.FinishSeconds > 0 ? m.RateWithoutFinish : null,
        ["ring_calls"] = m.RingCalls,
        ["p50_us"] = m.Latency.Count > 1 ? Runner.Micros(m.Latency.Quantile(0.50)) : null,
        ["p99_us"] = m.Latency.Count > 1 ? Runner.Micros(m.Latency.Quantile(0.99)) : null,
        ["rss_mib"] = m.RssMiB,
        ["heap_retained_mib"] = m.HeapRetainedMiB,
    });

    private static string Fmt(double rate, string unit) =>
        unit == "MB/s" ? rate.ToString("N1", CultureInfo.InvariantCulture) : rate.ToString("N0", CultureInfo.InvariantCulture);
}
