using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>What a background attach daemon does to itself: leave the starter's session, then its pipes.</summary>
public static class DaemonProcess
{
    /// <summary>setsid(2): no controlling terminal, so closing the shell does not send SIGHUP.</summary>
    public static void StartNewSession() => ProcessControl.StartNewSession();

    /// <summary>Points stdin at inputPath and stdout/stderr at outputPath (appending).</summary>
    public static void RedirectStandardStreams(string inputPath, string outputPath) =>
        ProcessControl.RedirectStandardStreams(inputPath, outputPath);
}
