using System.Text.Json;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>qemu-img and qemu-io as the tests use them: fixtures made at test time and the reference reads.</summary>
internal static class Qemu
{
    public static string Run(string program, params string[] arguments)
    {
        var result = CommandRunner.Run(program, arguments, TimeSpan.FromSeconds(300));
        Assert.True(result.ExitCode == 0, $"{program} {string.Join(' ', arguments)}: {result}");
        return result.Output;
    }

    public static string Img(params string[] arguments) => Run("qemu-img", arguments);

    /// <summary>qemu-io commands (`write -P 0xab 0 64k`, `write -z ...`, `discard ...`) on a qcow2 image.</summary>
    public static void Io(string image, params string[] commands)
    {
        var arguments = new List<string> { "-f", "qcow2" };
        foreach (var c in commands) { arguments.Add("-c"); arguments.Add(c); }
        arguments.Add(image);
        string output = Run("qemu-io", arguments.ToArray());
        Assert.DoesNotContain("failed", output);
    }

    /// <summary>What qemu reads: `qemu-img convert -O raw` of the image (or of one of its snapshots).</summary>
    public static byte[] ReadAll(string image, string scratchFolder, string? snapshot = null)
    {
        string raw = Path.Combine(scratchFolder, $"reference-{Guid.NewGuid():N}.raw");
        var arguments = new List<string> { "convert" };
        if (snapshot is not null) { arguments.Add("-l"); arguments.Add($"snapshot.name={snapshot}"); }
        arguments.AddRange(["-O", "raw", image, raw]);
        Img(arguments.ToArray());
        try { return File.ReadAllBytes(raw); }
        finally { File.Delete(raw); }
    }

    /// <summary>Reads the whole device in pieces of uneven, unaligned sizes (so heads, bodies and tails all occur).</summary>
    public static byte[] ReadDevice(IBlockDevice device, int seed = 1)
    {
        var all = new byte[device.Size];
        var rng = new Random(seed);
        int[] sizes = [1, 511, 512, 4096, 65536 + 7, 1 << 20, 3 << 20];
        for (long at = 0; at < all.Length;)
        {
            int n = (int)Math.Min(sizes[rng.Next(sizes.Length)] + rng.Next(0, 3), all.Length - at);
            device.Read(at, all.AsSpan((int)at, n));
            at += n;
        }
        return all;
    }

    public static void AssertSameBytes(byte[] expected, byte[] actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: {actual.Length} bytes, expected {expected.Length}");
        int diff = expected.AsSpan().CommonPrefixLength(actual);
        Assert.True(diff == expected.Length, $"{what}: first difference at byte {diff} (0x{diff:x}): got 0x{(diff < actual.Length ? actual[diff] : 0):x2}, expected 0x{(diff < expected.Length ? expected[diff] : 0):x2}");
    }

    /// <summary>`qemu-img map --output=json` as (start, length, class) with class D data, Z zero, U unallocated (not present), and the depth.</summary>
    public static List<(long Start, long Length, char Class, int Depth)> Map(string image)
    {
        var runs = new List<(long, long, char, int)>();
        using var doc = JsonDocument.Parse(Img("map", "--output=json", "-f", "qcow2", image));
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            bool data = e.GetProperty("data").GetBoolean(), zero = e.GetProperty("zero").GetBoolean(), present = e.GetProperty("present").GetBoolean();
            // Data clusters over a hole of the file (preallocation=metadata) are "data" and "zero" to qemu: data to us.
            char c = !present ? 'U' : data ? 'D' : 'Z';
            _ = zero;
            runs.Add((e.GetProperty("start").GetInt64(), e.GetProperty("length").GetInt64(), c, e.GetProperty("depth").GetInt32()));
        }
        return runs;
    }

    public static char ClassOf(MapRun run) => run.Source switch
    {
        MapSource.Own or MapSource.Shared or MapSource.Base => 'D',
        MapSource.Zero => 'Z',
        _ => 'U',
    };
}
