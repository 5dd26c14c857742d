using System.Diagnostics;
using CowDisk.Engine.Frontends.Attach;
using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>How list tells a daemon that runs from one on its way out (killed, still closing its files).</summary>
public sealed class DaemonProcessTests
{
    /// <summary>
    /// A zombie is what every exiting process becomes last (memory gone, pid still there): it counts as exiting; a
    /// live process and a pid that does not exist do not. The zombie is a child of a `sleep` that never reaps it.
    /// </summary>
    [Fact]
    public void A_process_whose_memory_is_gone_is_exiting_a_live_one_is_not()
    {
        var parent = Process.Start(new ProcessStartInfo("sh", ["-c", "sleep 0 & echo $!; exec sleep 30"]) { RedirectStandardOutput = true })!;
        try
        {
            int zombie = int.Parse(parent.StandardOutput.ReadLine()!);
            long deadline = Environment.TickCount64 + 10_000;
            while (!File.ReadAllText($"/proc/{zombie}/stat").Contains(") Z "))
            {
                Assert.True(Environment.TickCount64 < deadline, $"process {zombie} did not become a zombie");
                Thread.Sleep(10);
            }
            Assert.True(DaemonProcess.IsExiting(zombie));
            Assert.False(DaemonProcess.IsExiting(parent.Id));
            Assert.False(DaemonProcess.IsExiting(Environment.ProcessId));
            Assert.False(DaemonProcess.IsExiting(int.MaxValue));   // above pid_max: no such process
            Assert.False(DaemonProcess.IsRunning(zombie, name: null));
        }
        finally
        {
            parent.Kill();
            parent.WaitForExit();
        }
    }
}
