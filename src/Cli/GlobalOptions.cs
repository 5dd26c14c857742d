using System.CommandLine;
using System.Text.RegularExpressions;
using CowDisk.Engine;
using CowDisk.Engine.Devices;
using LiteDB;

namespace CowDisk.Cli;

/// <summary>Options every command takes, and the one place errors become a line on stderr and an exit code.</summary>
public static class GlobalOptions
{
    public static readonly Option<string?> Config = new("--config") { Description = "JSON settings file", Recursive = true };
    public static readonly Option<string[]> Set = new("--set")
    {
        Description = "Override a setting, e.g. --set Engine:MappingCache=false (repeatable)",
        Recursive = true,
        AllowMultipleArgumentsPerToken = false,
        Arity = ArgumentArity.ZeroOrMore,
    };

    public static EngineSettings Engine(ParseResult result)
    {
        var settings = CliSettings.Engine(CliSettings.Build(result.GetValue(Config), result.GetValue(Set) ?? Array.Empty<string>()));
        CowDisk.Engine.Images.BaseImage.AllowAnyBackingPath = settings.AllowAnyBackingPath;   // a process-wide policy for qcow2 bases
        return settings;
    }

    /// <summary>Setting Attach:IoUring (the default of attach --io-uring).</summary>
    public static bool AttachIoUring(ParseResult result) =>
        CliSettings.AttachIoUring(CliSettings.Build(result.GetValue(Config), result.GetValue(Set) ?? Array.Empty<string>()));

    /// <summary>Set to 1 to let unexpected exceptions through with their stack trace.</summary>
    public const string DebugVariable = "COWDISK_DEBUG";

    /// <summary>
    /// Runs a command body; known failures print "cowdisk: message" and return 1. Anything else is a bug, but
    /// still one line (exit 70), not a stack trace, unless COWDISK_DEBUG=1.
    /// </summary>
    public static int Run(Func<int> body)
    {
        try { return body(); }
        catch (Exception e) when (e is CliException or BlockDeviceException or IOException or UnauthorizedAccessException
                                      or LiteException or ArgumentException or FormatException)
        {
            Console.Error.WriteLine($"cowdisk: {OneLine(e.Message)}");
            return 1;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable(DebugVariable) != "1")
        {
            Console.Error.WriteLine($"cowdisk: unexpected {e.GetType().Name}: {OneLine(e.Message)} (a bug; {DebugVariable}=1 shows where)");
            return 70;
        }
    }

    public static string OneLine(string message)
    {
        string line = Regex.Replace(message, @"\s+", " ").Trim();
        // .NET ends a system error with " : 'PATH'"; say the path once, and only where it adds something.
        var suffix = DotNetPathSuffix.Match(line);
        if (!suffix.Success) return line;
        string text = suffix.Groups["text"].Value, path = suffix.Groups["path"].Value;
        return text.Contains(path, StringComparison.Ordinal) ? text : $"{text} ({path})";
    }

    private static readonly Regex DotNetPathSuffix = new(@"^(?<text>.+?) : '(?<path>[^']+)'$", RegexOptions.CultureInvariant);
}
