using System.Diagnostics;
using System.Runtime;
using System.Runtime.InteropServices;

namespace CowDisk.Bench;

/// <summary>Facts about the machine and the folder the figures came from.</summary>
internal static class Machine
{
    public static IEnumerable<(string Key, string Value)> Facts(string folder)
    {
        yield return ("date (UTC)", DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm:ss"));
        yield return ("engine", Try(EngineVersion));
        yield return ("load avg", $"{LoadAverage()} (other work on the machine skews the figures; ratios within one run hold better)");
        yield return ("cpu", $"{Environment.ProcessorCount} x {CpuModel()}");
        yield return ("memory", MemTotal());
        yield return ("kernel", Try(() => File.ReadAllText("/proc/sys/kernel/osrelease").Trim()) + $" ({RuntimeInformation.OSArchitecture})");
        yield return ("os", Try(OsName));
        yield return (".NET", $"{RuntimeInformation.FrameworkDescription}, SDK {Try(SdkVersion)}, " +
                              $"{(GCSettings.IsServerGC ? "server" : "workstation")} GC, {(IsRelease() ? "Release" : "DEBUG BUILD")}");
        var (fs, source, mount, options) = FileSystemOf(folder);
        yield return ("folder", $"{folder}");
        yield return ("file system", $"{fs} on {source} (mounted at {mount}, {options}), {Try(() => Size(new DriveInfo(mount).AvailableFreeSpace))} free");
    }

    /// <summary>How long a spin of <paramref name="rounds"/> x Thread.SpinWait(<paramref name="units"/>) takes: median and best of 201.</summary>
    public static (double Median, double Best) SpinMicros(int rounds, int units)
    {
        var samples = new double[201];
        for (int r = 0; r < samples.Length; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < rounds; i++) Thread.SpinWait(units);
            samples[r] = Stopwatch.GetElapsedTime(t0).TotalMicroseconds;
        }
        Array.Sort(samples);
        return (samples[samples.Length / 2], samples[0]);
    }

    /// <summary>$COWDISK if set (bench/run sets it), else the Release build of this checkout.</summary>
    public static string Cowdisk => Environment.GetEnvironmentVariable("COWDISK") is { Length: > 0 } c ? c
        : Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "src", "Cli", "bin", "Release", "net10.0", "cowdisk");

    /// <summary>
    /// Runs a command under GNU time (/usr/bin/time) and returns its peak RSS in bytes (the child's ru_maxrss),
    /// or null if /usr/bin/time is missing or the command fails.
    /// </summary>
    public static long? PeakRss(string file, params string[] args)
    {
        if (!File.Exists("/usr/bin/time") || !File.Exists(file)) return null;
        var psi = new ProcessStartInfo("/usr/bin/time") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-f", "maxrss=%M", file }.Concat(args)) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        p.StandardOutput.ReadToEnd();
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        var line = err.Split('\n').LastOrDefault(l => l.StartsWith("maxrss=", StringComparison.Ordinal));
        return p.ExitCode == 0 && line is not null && long.TryParse(line[7..], out long kb) ? kb * 1024 : null;
    }

    public static string LoadAverage() => Try(() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)));

    /// <summary>The git commit of the checkout the benchmark was built in, and whether src/ has uncommitted changes.</summary>
    private static string EngineVersion()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !Directory.Exists(Path.Combine(dir.FullName, ".git")) && !File.Exists(Path.Combine(dir.FullName, ".git"))) dir = dir.Parent;
        if (dir is null) return "not a git checkout";
        string Git(string args)
        {
            using var p = Process.Start(new ProcessStartInfo("git", $"-C \"{dir.FullName}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            string o = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(10_000);
            return o;
        }
        string head = Git("log -1 --format=\"%h %cI %s\"");
        int dirty = Git("status --porcelain -- src").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        return $"{head} ({dir.FullName}; {(dirty == 0 ? "src/ clean" : $"{dirty} uncommitted file(s) under src/")})";
    }

    public static string FileSystemType(string folder) => FileSystemOf(folder).Fs;

    private static bool IsRelease()
    {
        var attr = typeof(Machine).Assembly.GetCustomAttributes(typeof(DebuggableAttribute), false).OfType<DebuggableAttribute>().FirstOrDefault();
        return attr is null || !attr.IsJITOptimizerDisabled;
    }

    /// <summary>The mount that holds the folder: the longest mount point that prefixes it (from /proc/self/mountinfo).</summary>
    private static (string Fs, string Source, string Mount, string Options) FileSystemOf(string folder)
    {
        string full = Path.GetFullPath(folder);
        (string, string, string, string) best = ("?", "?", "/", "?");
        int bestLength = -1;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/mountinfo"))
            {
                var parts = line.Split(' ');
                int dash = Array.IndexOf(parts, "-");
                if (dash < 0 || parts.Length < dash + 3) continue;
                string mount = Unescape(parts[4]);
                bool under = full == mount || full.StartsWith(mount.EndsWith('/') ? mount : mount + "/", StringComparison.Ordinal);
                if (under && mount.Length >= bestLength)
                {
                    bestLength = mount.Length;
                    best = (parts[dash + 1], parts[dash + 2], mount, parts.Length > dash + 3 ? parts[dash + 3] : parts[5]);
                }
            }
        }
        catch (IOException) { }
        return best;
    }

    private static string Unescape(string s) => s.Replace("\\040", " ").Replace("\\011", "\t").Replace("\\012", "\n").Replace("\\134", "\\");

    private static string CpuModel() => Try(() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?");

    private static string MemTotal() => Try(() =>
    {
        var line = File.ReadLines("/proc/meminfo").First(l => l.StartsWith("MemTotal:", StringComparison.Ordinal));
        long kb = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        return Size(kb * 1024);
    });

    private static string OsName() =>
        File.ReadLines("/etc/os-release").FirstOrDefault(l => l.StartsWith("PRETTY_NAME=", StringComparison.Ordinal))?[12..].Trim('"') ?? "?";

    private static string SdkVersion()
    {
        using var p = Process.Start(new ProcessStartInfo("dotnet", "--version") { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string v = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit(10_000);
        return v.Length > 0 ? v : "?";
    }

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 40 => $"{bytes / (double)(1L << 40):0.#} TiB",
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.#} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.#} MiB",
        >= 1L << 10 => $"{bytes / (double)(1L << 10):0.#} KiB",
        _ => $"{bytes} B",
    };

    private static string Try(Func<string> f)
    {
        try { return f(); } catch (Exception) { return "?"; }
    }
}
