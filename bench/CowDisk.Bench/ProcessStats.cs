using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Bench;

/// <summary>Whole-process counters read before and after a phase: CPU time, context switches, bytes written, bytes allocated.</summary>
internal readonly record struct ProcessStats(double CpuSeconds, long VoluntarySwitches, long InvoluntarySwitches, long WriteBytes, long AllocatedBytes)
{
    public static ProcessStats Now()
    {
        Native.GetUsage(out var u);
        return new ProcessStats(
            u.UserSec + u.UserUsec / 1e6 + u.SysSec + u.SysUsec / 1e6,
            u.Nvcsw, u.Nivcsw, ReadWchar(), GC.GetTotalAllocatedBytes(precise: true));
    }

    public static ProcessStats operator -(ProcessStats a, ProcessStats b) => new(
        a.CpuSeconds - b.CpuSeconds, a.VoluntarySwitches - b.VoluntarySwitches, a.InvoluntarySwitches - b.InvoluntarySwitches,
        a.WriteBytes - b.WriteBytes, a.AllocatedBytes - b.AllocatedBytes);

    /// <summary>VmRSS of this process in bytes (0 if /proc/self/status cannot be read).</summary>
    public static long Rss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        return 0;
    }

    /// <summary>wchar of /proc/self/io: bytes handed to write(2)/pwrite(2) by every thread of the process.</summary>
    private static long ReadWchar()
    {
        foreach (var line in File.ReadLines("/proc/self/io"))
            if (line.StartsWith("wchar:", StringComparison.Ordinal)) return long.Parse(line.AsSpan(6).Trim());
        return 0;
    }
}

internal static partial class Native
{
    /// <summary>struct rusage on 64-bit Linux: two timevals, then fourteen longs.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct RUsage
    {
        public long UserSec, UserUsec, SysSec, SysUsec;
        public long MaxRss, Ixrss, Idrss, Isrss, Minflt, Majflt, Nswap, Inblock, Oublock, Msgsnd, Msgrcv, Nsignals, Nvcsw, Nivcsw;
    }

    private const int RUSAGE_SELF = 0;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int getrusage(int who, out RUsage usage);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(int fd);

    [LibraryImport("libc")]
    private static partial void sync();

    /// <summary>sync(2): writes back every dirty page on the machine, so a phase does not inherit the previous one's writeback.</summary>
    public static void Sync() => sync();

    public static void GetUsage(out RUsage usage)
    {
        if (getrusage(RUSAGE_SELF, out usage) != 0) usage = default;
    }

    public static void FDataSync(SafeFileHandle handle)
    {
        if (fdatasync((int)handle.DangerousGetHandle()) != 0)
            throw new IOException($"fdatasync failed: errno {Marshal.GetLastPInvokeError()}");
    }
}
