using System.Runtime.InteropServices;
using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>The machine's PM QoS CPU latency limit (/dev/cpu_dma_latency), which an io_uring attach asks to lower while requests come.</summary>
internal static class CpuLatencyQos
{
    private const string DevicePath = "/dev/cpu_dma_latency";

    /// <summary>The kernel's default: nobody asks for anything.</summary>
    public const int NoLimit = 2_000_000_000;

    /// <summary>The limit in force now (µs).</summary>
    public static int Limit()
    {
        using var device = new FileStream(DevicePath, FileMode.Open, FileAccess.Read);
        var value = new byte[4];
        device.ReadExactly(value);
        return MemoryMarshal.Read<int>(value);   // a native s32
    }

    /// <summary>Fails unless the device exists and nobody asks for a limit now (else ours cannot be seen); returns the limit.</summary>
    public static int AssertNobodyAsks()
    {
        Assert.True(File.Exists(DevicePath), $"no {DevicePath} (PM QoS): a kernel without CONFIG_CPU_IDLE cannot run this test");
        int limit = Limit();
        Assert.True(limit == NoLimit, $"another process asks for a CPU latency of {limit} us (not the kernel's default): this test cannot see ours");
        return limit;
    }

    /// <summary>Whether the limit reads <paramref name="value"/> within 5 s (a disk just attached or used may still be busy a moment).</summary>
    public static bool ReturnsTo(int value)
    {
        long deadline = Environment.TickCount64 + 5000;
        while (Limit() != value)
        {
            if (Environment.TickCount64 > deadline) return false;
            Thread.Sleep(20);
        }
        return true;
    }
}
