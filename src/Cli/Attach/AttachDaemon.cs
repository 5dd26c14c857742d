using System.Runtime.InteropServices;
using CowDisk.Engine.Frontends.Attach;

namespace CowDisk.Cli.Attach;

/// <summary>
/// The attach daemon: brings the attachment up, reports the device, then serves until SIGTERM, SIGINT or SIGHUP
/// and shuts down cleanly. Started by <see cref="AttachLauncher"/> (background) or directly with --foreground.
/// </summary>
internal static class AttachDaemon
{
    /// <summary>Set by the launcher: stdout is a pipe it reads until <see cref="ReadyLine"/>.</summary>
    public const string NotifyVariable = "COWDISK_ATTACH_NOTIFY";
    public const string ReadyLine = "cowdisk-attach-ready";

    public static int Run(AttachRequest request)
    {
        bool launched = Environment.GetEnvironmentVariable(NotifyVariable) == "1";
        var registry = new AttachRegistry(AttachPaths.FromEnvironment());
        if (launched) DaemonProcess.StartNewSession();
        registry.EnsureDirectories();
        var log = launched ? DaemonLog.AppendingTo(registry.Paths.LogPath(request.Name)) : new DaemonLog(Console.Error);

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

        log.Write($"attaching {request.Image} as '{request.Name}' (pid {Environment.ProcessId}{(request.ReadOnly ? ", read-only" : "")}{(request.Overlay ? ", overlay" : "")})");
        AttachSession session;
        try { session = AttachSession.Start(request, registry, log.Write); }
        catch (Exception error)
        {
            log.Write($"attach failed: {error.Message}");
            throw;
        }
        using (session)
        {
            var record = session.Record;
            log.Write($"ready: {record.Device} ({record.Link}), direct I/O {(record.DirectIo == true ? "on" : "off")}");
            if (record.Overlay is not null) Console.WriteLine($"overlay: {record.Overlay}");
            Console.WriteLine(record.Device);
            Console.WriteLine(record.Link);
            if (launched)
            {
                Console.WriteLine(ReadyLine);
                Console.Out.Flush();
                // The launcher stops listening now; later output goes to the log, not to a closed pipe.
                DaemonProcess.RedirectStandardStreams("/dev/null", registry.Paths.LogPath(request.Name));
            }

            stopRequested.Wait();
            try { session.Stop(); }
            catch (Exception error)
            {
                log.Write($"shutdown failed: {error.Message}");
                return 1;
            }
            log.Write("detached cleanly");
            if (launched) File.Delete(registry.Paths.LogPath(request.Name)); // kept only when something went wrong
            return 0;
        }
    }
}
