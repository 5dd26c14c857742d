using System.Diagnostics;

namespace CowDisk.Tests.Attach;

/// <summary>Runs a program to completion with a deadline; a program still running at the deadline is killed.</summary>
public static class CommandRunner
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(120);

    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout: {Output}\nstderr: {Error}";
    }

    public static Result Run(string program, IEnumerable<string> arguments, TimeSpan? timeout = null,
        IDictionary<string, string>? environment = null)
    {
        using var process = Start(program, arguments, environment);
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? DefaultTimeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} did not finish within {(timeout ?? DefaultTimeout).TotalSeconds} s");
        }
        process.WaitForExit();
        return new Result(process.ExitCode, output.Result, error.Result);
    }

    /// <summary>Runs and requires exit code 0.</summary>
    public static Result Check(string program, params string[] arguments)
    {
        var result = Run(program, arguments);
        if (result.ExitCode != 0) throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed: {result}");
        return result;
    }

    public static Process Start(string program, IEnumerable<string> arguments, IDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        if (environment is not null) foreach (var (key, value) in environment) start.Environment[key] = value;
        var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        process.StandardInput.Close();
        return process;
    }
}
