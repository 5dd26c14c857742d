using System.Diagnostics;
using System.Reflection;
using CowDisk.Engine.Frontends.Attach;

namespace CowDisk.Cli.Attach;

/// <summary>
/// Background attach: starts this same executable as the daemon (attach … --foreground), relays what it prints
/// until it reports ready, and returns. On failure it relays the daemon's one-line error and exit code, and
/// deletes the daemon's log: it says no more than that line, and kept it would pile up under the run folder.
/// </summary>
internal static class AttachLauncher
{
    private static readonly TimeSpan ReadyTimeout = TimeSpan.FromSeconds(120);

    public static int Launch(IReadOnlyList<string> daemonArguments, AttachRegistry registry, string name)
    {
        string logPath = registry.Paths.LogPath(name);
        var start = new ProcessStartInfo(ServerBuild.Path ?? Environment.ProcessPath ?? throw new CliException("cannot find the cowdisk executable"))
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Run as `dotnet cowdisk.dll`: the host needs the assembly path first.
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
            start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        foreach (string argument in daemonArguments) start.ArgumentList.Add(argument);
        start.Environment[DaemonHost.NotifyVariable] = "1";

        using var daemon = Process.Start(start) ?? throw new CliException("cannot start the attach daemon");
        daemon.StandardInput.Close();
        var errors = new List<string>();
        daemon.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) lock (errors) errors.Add(line); };
        daemon.BeginErrorReadLine();

        long deadline = Environment.TickCount64 + (long)ReadyTimeout.TotalMilliseconds;
        while (true)
        {
            var next = daemon.StandardOutput.ReadLineAsync();
            if (!next.Wait(TimeSpan.FromMilliseconds(Math.Max(0, deadline - Environment.TickCount64))))
            {
                daemon.Kill();
                throw new CliException($"the attach daemon was not ready within {ReadyTimeout.TotalSeconds:0} s (see {logPath})");
            }
            string? line = next.Result;
            if (line is null) break;
            if (line == DaemonHost.ReadyLine) return 0;
            if (line.StartsWith(DaemonHost.NoticePrefix, StringComparison.Ordinal)) Console.Error.WriteLine($"cowdisk: {line[DaemonHost.NoticePrefix.Length..]}");
            else Console.WriteLine(line);
        }

        // The daemon ended before it was ready: its stderr says why.
        daemon.WaitForExit();
        lock (errors)
        {
            if (errors.Count == 0) errors.Add($"cowdisk: the attach daemon exited with code {daemon.ExitCode} before the device was ready (see {logPath})");
            // Not while the name is alive: then the log is another daemon's (ours lost a race for the name).
            else if (!registry.IsAlive(name)) File.Delete(logPath);
            foreach (string line in errors) Console.Error.WriteLine(line);
        }
        return daemon.ExitCode == 0 ? 1 : daemon.ExitCode;
    }
}
