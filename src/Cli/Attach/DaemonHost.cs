using System.Runtime.InteropServices;
using CowDisk.Engine.Frontends.Attach;

namespace CowDisk.Cli.Attach;

/// <summary>A started daemon session as the host sees it: what to print once ready, and how to stop it.</summary>
internal sealed record DaemonSession(IDisposable Session, IReadOnlyList<string> ReadyLines, string ReadyLog, Action Stop)
{
    /// <summary>Printed on stderr as "cowdisk: …" before the ready lines (the launcher relays them there).</summary>
    public IReadOnlyList<string> Notices { get; init; } = [];
}

/// <summary>
/// The daemon's life for attach and serve alike: bring the session up, print what the user needs, then run until
/// SIGTERM, SIGINT or SIGHUP and shut down cleanly. Started by <see cref="AttachLauncher"/> (background) or in
/// the foreground.
/// </summary>
internal static class DaemonHost
{
    /// <summary>Set by the launcher: stdout is a pipe it reads until <see cref="ReadyLine"/>.</summary>
    public const string NotifyVariable = "COWDISK_ATTACH_NOTIFY";
    public const string ReadyLine = "cowdisk-attach-ready";
    /// <summary>A line on the launcher's pipe that starts so is a notice for stderr, not a ready line.</summary>
    public const string NoticePrefix = "cowdisk-attach-notice: ";

    public static int Run(string name, string starting, Func<Action<string>, DaemonSession> start, string stoppedLog)
    {
        bool launched = Environment.GetEnvironmentVariable(NotifyVariable) == "1";
        var registry = new AttachRegistry(AttachPaths.FromEnvironment());
        if (launched) DaemonProcess.StartNewSession();
        registry.EnsureDirectories();
        var log = launched ? DaemonLog.AppendingTo(registry.Paths.LogPath(name)) : new DaemonLog(Console.Error);

        using var stopRequested = new ManualResetEventSlim();
        void OnSignal(PosixSignalContext context)
        {
            context.Cancel = true; // we exit ourselves, after the clean shutdown
            log.Write($"received {context.Signal}; shutting down");
            stopRequested.Set();
        }
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);

        // In the foreground a failed start is the one error line the command prints; the log file keeps both.
        if (launched) log.Write(starting);
        DaemonSession session;
        try { session = start(log.Write); }
        catch (Exception error)
        {
            if (launched) log.Write($"start failed: {error.Message}");
            throw;
        }
        if (!launched) log.Write(starting);
        using (session.Session)
        {
            log.Write(session.ReadyLog);
            foreach (string notice in session.Notices)
            {
                if (launched) Console.WriteLine(NoticePrefix + notice);
                else Console.Error.WriteLine($"cowdisk: {notice}");
            }
            foreach (string line in session.ReadyLines) Console.WriteLine(line);
            if (launched)
            {
                Console.WriteLine(ReadyLine);
                Console.Out.Flush();
                // The launcher stops listening now; later output goes to the log, not to a closed pipe.
                DaemonProcess.RedirectStandardStreams("/dev/null", registry.Paths.LogPath(name));
            }
            else Console.Out.Flush();

            stopRequested.Wait();
            try { session.Stop(); }
            catch (Exception error)
            {
                log.Write($"shutdown failed: {error.Message}");
                return 1;
            }
            log.Write(stoppedLog);
            if (launched) File.Delete(registry.Paths.LogPath(name)); // kept only when something went wrong
            return 0;
        }
    }
}
