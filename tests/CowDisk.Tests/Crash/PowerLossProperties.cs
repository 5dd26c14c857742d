using FsCheck;
using FsCheck.Fluent;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Crash;

/// <summary>
/// FsCheck chooses the workload and the power cuts; every crash image must honour the crash contract.
/// CI runs at least 500 crash points; COWDISK_CRASH_POINTS=20000 is the long mode (see docs/RELIABILITY.md).
/// </summary>
[Collection(PowerLossCollection.Name)]
public class PowerLossProperties(ITestOutputHelper output)
{
    private static int CrashPoints =>
        int.TryParse(Environment.GetEnvironmentVariable("COWDISK_CRASH_POINTS"), out int n) && n > 0 ? n : 600;

    [Fact]
    public void Every_power_cut_leaves_an_image_that_opens_and_keeps_every_flushed_write()
    {
        int wanted = CrashPoints, images = 0, scenarios = 0, failures = 0;
        long acknowledgedBefore = Interlocked.Read(ref CrashRunner.AcknowledgedWritesChecked);
        var started = DateTime.UtcNow;
        // Each scenario yields up to six crash images (five cuts at random operations, one at the end).
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Math.Max(1, wanted / 5)),
            Prop.ForAll(CrashScenario.Generator().ToArbitrary(), s =>
            {
                try { Interlocked.Add(ref images, CrashRunner.Run(s)); }
                catch (Exception e) when (Interlocked.Increment(ref failures) == 1)
                {
                    // The first failure as found, before FsCheck's shrinking (which can take long) replaces it.
                    string first = $"power-loss simulation: first failure: {e}";
                    Console.Error.WriteLine(first);
                    if (Environment.GetEnvironmentVariable("COWDISK_CRASH_FAILURE_FILE") is { Length: > 0 } file) File.WriteAllText(file, first);
                    throw;
                }
                Interlocked.Increment(ref scenarios);
            }));
        long acknowledged = Interlocked.Read(ref CrashRunner.AcknowledgedWritesChecked) - acknowledgedBefore;
        string summary = $"power-loss simulation: {scenarios} workloads, {images} crash images checked, " +
                         $"{acknowledged} flushed writes checked across them, 0 lost, every byte of every image verified " +
                         $"({(DateTime.UtcNow - started).TotalSeconds:F0} s)";
        output.WriteLine(summary);
        Console.WriteLine(summary);
        Assert.True(images >= wanted * 0.8, $"only {images} crash images were checked, fewer than asked ({wanted})");
    }

    /// <summary>The same contract for layered blocks (first small writes after snapshots), at a third of the crash points.</summary>
    [Fact]
    public void Every_power_cut_during_layered_writes_leaves_an_image_that_keeps_every_flushed_write()
    {
        int wanted = Math.Max(1, CrashPoints / 3), images = 0;
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(Math.Max(1, wanted / 5)),
            Prop.ForAll(CrashScenario.LayerGenerator().ToArbitrary(), s => { Interlocked.Add(ref images, CrashRunner.Run(s)); }));
        output.WriteLine($"power-loss simulation, layered blocks: {images} crash images checked");
        Assert.True(images >= wanted * 0.8, $"only {images} crash images were checked, fewer than asked ({wanted})");
    }
}

/// <summary>The crash-image counters are shared: these classes run one after the other, not side by side.</summary>
[CollectionDefinition(Name)]
public sealed class PowerLossCollection
{
    public const string Name = "power-loss";
}
