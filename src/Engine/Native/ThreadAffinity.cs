using System.Runtime.InteropServices;

namespace CowDisk.Engine.Native;

/// <summary>Pins the calling thread to one CPU (sched_setaffinity on the thread's own id).</summary>
internal static unsafe partial class ThreadAffinity
{
    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_setaffinity(int pid, nuint size, ulong* mask);

    /// <summary>Number of possible CPUs (/sys/devices/system/cpu/possible): FUSE makes one io_uring queue per possible CPU.</summary>
    public static int PossibleCpus()
    {
        try
        {
            string text = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();   // "0-3", "0", "0-1,4-5"
            int highest = 0;
            foreach (string part in text.Split(','))
            {
                string last = part.Split('-')[^1];
                highest = Math.Max(highest, int.Parse(last, System.Globalization.CultureInfo.InvariantCulture));
            }
            return highest + 1;
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException) { return Environment.ProcessorCount; }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sched_getaffinity(int pid, nuint size, ulong* mask);

    private const int MaskWords = 16;   // up to 1024 CPUs

    /// <summary>The CPUs the calling thread may run on now (to go back to after a pin), or null where unknown.</summary>
    public static ulong[]? CurrentCpus()
    {
        var mask = new ulong[MaskWords];
        fixed (ulong* m = mask) return sched_getaffinity(0, MaskWords * sizeof(ulong), m) >= 0 ? mask : null;
    }

    /// <summary>Lets the calling thread run on the given CPUs again (a mask from <see cref="CurrentCpus"/>).</summary>
    public static bool SetCurrentCpus(ulong[] mask)
    {
        fixed (ulong* m = mask) return sched_setaffinity(0, (nuint)(mask.Length * sizeof(ulong)), m) == 0;
    }

    /// <summary>True when the thread now runs only on <paramref name="cpu"/>; false where it cannot (the CPU is offline, say).</summary>
    public static bool PinCurrentThread(int cpu)
    {
        const int words = MaskWords;
        if (cpu < 0 || cpu >= words * 64) return false;
        ulong* mask = stackalloc ulong[words];
        for (int i = 0; i < words; i++) mask[i] = 0;
        mask[cpu / 64] = 1UL << (cpu % 64);
        return sched_setaffinity(0, words * sizeof(ulong), mask) == 0;
    }
}
