using System.Diagnostics;

namespace CowDisk.Engine.Native;

/// <summary>
/// How long one thread spins for what it waits on before it sleeps: adaptive busy polling, as qemu's event loop
/// polls (aio poll-max-ns). In a VM a sleeping thread lets its vCPU halt, and waking a halted vCPU costs tens of
/// microseconds (on this project's 2-vCPU machine a QD1 4 KiB read took ~140 µs through /dev/fuse with sleeps,
/// ~100 µs with a spinning server). The window grows while waits end soon after it and shrinks to nothing when
/// they end later than the cap, so an idle or lightly used device costs no spinning. One owner thread.
/// </summary>
internal sealed class PollWindow
{
    private static readonly long StartTicks = Math.Max(1, Stopwatch.Frequency / 250_000);   // 4 µs, qemu's first step
    private readonly long _maxTicks;

    /// <param name="maxMicroseconds">The cap; 0 turns polling off.</param>
    public PollWindow(int maxMicroseconds) => _maxTicks = maxMicroseconds * Stopwatch.Frequency / 1_000_000;

    /// <summary>How long the next wait spins before it sleeps (0: it sleeps at once).</summary>
    public long Ticks { get; private set; }

    /// <summary>The cap: also how long a spinning thread polls for its own disk transfers.</summary>
    public long MaxTicks => _maxTicks;

    /// <summary>Adjusts the window after a wait that took <paramref name="waited"/> ticks in all (spin and sleep).</summary>
    public void Waited(long waited)
    {
        if (waited <= Ticks) return;                              // polling caught it: keep the window
        if (waited > _maxTicks) Ticks = Ticks / 2 < StartTicks ? 0 : Ticks / 2;   // too long to spin for: spin less
        else Ticks = Math.Min(_maxTicks, Ticks == 0 ? StartTicks : Ticks * 2);   // a little longer would have caught it
    }
}
