using System.Diagnostics;
using CowDisk.Engine.Native;
using Xunit;

namespace CowDisk.Tests.Native;

/// <summary>The adaptive polling window: grows while waits end soon after it, shrinks to nothing when they end past the cap.</summary>
public sealed class PollWindowTests
{
    private static long Us(double microseconds) => (long)(microseconds * Stopwatch.Frequency / 1_000_000);

    [Fact]
    public void Short_waits_grow_the_window_by_doubling_up_to_the_cap_and_a_caught_wait_keeps_it()
    {
        var w = new PollWindow(250);
        Assert.Equal(0, w.Ticks);   // no spinning before anything was seen
        Assert.Equal(Us(250), w.MaxTicks);
        var seen = new List<long>();
        for (int i = 0; i < 12; i++)
        {
            w.Waited(Us(200));   // just under the cap: a longer window would have caught it
            seen.Add(w.Ticks);
        }
        Assert.Equal(Us(4), seen[0]);
        Assert.Equal(seen[0] * 2, seen[1]);
        Assert.Equal(Us(250), seen[^1]);
        Assert.True(seen.Zip(seen.Skip(1)).All(p => p.Second >= p.First), "the window only grows under short waits");
        long full = w.Ticks;
        w.Waited(Us(100));   // caught inside the window
        Assert.Equal(full, w.Ticks);
    }

    [Fact]
    public void Waits_past_the_cap_halve_the_window_down_to_nothing()
    {
        var w = new PollWindow(250);
        for (int i = 0; i < 12; i++) w.Waited(Us(200));
        long before = w.Ticks;
        w.Waited(Us(10_000));   // idle: spinning that long would be waste
        Assert.Equal(before / 2, w.Ticks);
        for (int i = 0; i < 20; i++) w.Waited(Us(10_000));
        Assert.Equal(0, w.Ticks);
    }

    [Fact]
    public void A_cap_of_zero_never_polls()
    {
        var w = new PollWindow(0);
        foreach (double us in new[] { 0.5, 3, 50, 5000 }) w.Waited(Us(us));
        Assert.Equal(0, w.Ticks);
        Assert.Equal(0, w.MaxTicks);
    }
}
