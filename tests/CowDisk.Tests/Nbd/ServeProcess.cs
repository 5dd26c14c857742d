using System.Diagnostics;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Native;
using CowDisk.Tests.Attach;

namespace CowDisk.Tests.Nbd;

/// <summary>
/// `cowdisk serve` running in the foreground as a child process, with its own run folder (COWDISK_RUN_DIR). Stop
/// sends SIGTERM and waits for a clean exit; Dispose kills it by pid if it is still running, so a failing test
/// leaves nothing behind.
/// </summary>
public sealed class ServeProcess : IDisposable
{
    private readonly Process _process;
    private readonly Task<string> _errors;

    public string RunDirectory { get; }
    /// <summary>The addresses the server printed (nbd+unix://… or nbd://…).</summary>
    public List<string> Addresses { get; } = [];
    public string Uri => Addresses[0];
    public int Pid => _process.Id;

    private ServeProcess(Process process, string runDirectory)
    {
        _process = process;
        RunDirectory = runDirectory;
        _errors = process.StandardError.ReadToEndAsync();
    }

    public static Dictionary<string, string> Environment(string runDirectory) => new() { [AttachPaths.RunDirectoryVariable] = runDirectory };

    /// <summary>Starts the server and waits until it prints its addresses.</summary>
    public static ServeProcess Start(string runDirectory, params string[] arguments)
    {
        Directory.CreateDirectory(runDirectory);
        var process = CommandRunner.Start(CowdiskExecutable.Path, ["serve", .. arguments], Environment(runDirectory));
        var serve = new ServeProcess(process, runDirectory);
        try
        {
            while (true)
            {
                var line = process.StandardOutput.ReadLineAsync();
                if (!line.Wait(TimeSpan.FromSeconds(60))) throw new TimeoutException("cowdisk serve printed no address within 60 s");
                if (line.Result is null)
                {
                    process.WaitForExit();
                    throw new InvalidOperationException($"cowdisk serve exited with {process.ExitCode} before it was ready: {serve._errors.Result}");
                }
                // The server listens before it prints where: the first address means ready.
                if (line.Result.StartsWith("nbd", StringComparison.Ordinal))
                {
                    serve.Addresses.Add(line.Result);
                    break;
                }
            }
            return serve;
        }
        catch
        {
            serve.Dispose();
            throw;
        }
    }

    /// <summary>SIGTERM, then the exit code (0 when every image was flushed and closed cleanly).</summary>
    public int Stop()
    {
        if (_process.HasExited) return _process.ExitCode;
        ProcessControl.SendSignal(_process.Id, ProcessControl.SIGTERM);
        if (!_process.WaitForExit(TimeSpan.FromSeconds(60))) throw new TimeoutException($"cowdisk serve did not stop within 60 s after SIGTERM: {StandardError}");
        return _process.ExitCode;
    }

    /// <summary>kill -9: no clean shutdown, as a crash.</summary>
    public void Kill()
    {
        ProcessControl.SendSignal(_process.Id, ProcessControl.SIGKILL);
        _process.WaitForExit(30_000);
    }

    public string StandardError => _process.HasExited ? _errors.Result : "(still running)";

    public void Dispose()
    {
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        _process.WaitForExit(10_000);
        _process.Dispose();
    }
}
