using CowDisk.Engine;
using Microsoft.Extensions.Configuration;

namespace CowDisk.Cli;

/// <summary>
/// Settings from, in rising precedence: a JSON file (--config, else $COWDISK_CONFIG, else /etc/cowdisk/cowdisk.json
/// if present), COWDISK_* environment variables (COWDISK_Engine__MappingCache=false), and --set Key=Value.
/// </summary>
public static class CliSettings
{
    public const string DefaultConfigPath = "/etc/cowdisk/cowdisk.json";

    public static IConfiguration Build(string? configFile, IEnumerable<string> sets)
    {
        var builder = new ConfigurationBuilder();
        string? file = configFile ?? Environment.GetEnvironmentVariable("COWDISK_CONFIG");
        if (file is not null)
        {
            if (!File.Exists(file)) throw new CliException($"config file {file} does not exist");
            builder.AddJsonFile(Path.GetFullPath(file), optional: false);
        }
        else if (File.Exists(DefaultConfigPath)) builder.AddJsonFile(DefaultConfigPath, optional: true);
        builder.AddEnvironmentVariables("COWDISK_");
        var switches = new List<string>();
        foreach (var s in sets)
        {
            int eq = s.IndexOf('=');
            if (eq <= 0) throw new CliException($"invalid --set '{s}' (use Key=Value, e.g. Engine:MappingCache=false)");
            switches.Add($"--{s[..eq].Replace("__", ":")}={s[(eq + 1)..]}");   // Engine__X as in the environment
        }
        builder.AddCommandLine(switches.ToArray());
        try { return builder.Build(); }
        catch (Exception e) when (e is FormatException or InvalidDataException) { throw new CliException($"bad configuration: {e.Message}"); }
    }

    /// <summary>The "Attach" section: IoUring (serve FUSE over io_uring, as --io-uring).</summary>
    public static bool AttachIoUring(IConfiguration config)
    {
        var section = config.GetSection("Attach");
        foreach (var child in section.GetChildren())
            if (!string.Equals(child.Key, "IoUring", StringComparison.OrdinalIgnoreCase))
                throw new CliException($"unknown setting Attach:{child.Key} (known: IoUring)");
        return Value(section, "IoUring", false);
    }

    public static EngineSettings Engine(IConfiguration config)
    {
        var section = config.GetSection("Engine");
        string[] known = ["MappingCache", "RingSlots", "MaxInFlightMaps", "CommitIntervalMs", "CommitMaxDirtyChunks", "JournalFoldEntries", "DirectIo", "GrowStepMiB", "PollMicroseconds", "AllowAnyBackingPath"];
        // A mistyped key would otherwise be ignored in silence.
        foreach (var child in section.GetChildren())
            if (!known.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                throw new CliException($"unknown setting Engine:{child.Key} (known: {string.Join(", ", known)})");
        var defaults = new EngineSettings();
        return new EngineSettings
        {
            MappingCache = Value(section, "MappingCache", defaults.MappingCache),
            RingSlots = Value(section, "RingSlots", defaults.RingSlots),
            MaxInFlightMaps = Value(section, "MaxInFlightMaps", defaults.MaxInFlightMaps),
            CommitIntervalMs = Value(section, "CommitIntervalMs", defaults.CommitIntervalMs),
            CommitMaxDirtyChunks = Value(section, "CommitMaxDirtyChunks", defaults.CommitMaxDirtyChunks),
            JournalFoldEntries = Value(section, "JournalFoldEntries", defaults.JournalFoldEntries),
            DirectIo = Value(section, "DirectIo", defaults.DirectIo),
            GrowStepMiB = Value(section, "GrowStepMiB", defaults.GrowStepMiB),
            PollMicroseconds = Value(section, "PollMicroseconds", defaults.PollMicroseconds),
            AllowAnyBackingPath = Value(section, "AllowAnyBackingPath", defaults.AllowAnyBackingPath),
        };
    }

    /// <summary>One setting's value; a value of the wrong type is refused naming the setting.</summary>
    private static T Value<T>(IConfigurationSection section, string key, T fallback)
    {
        try { return section.GetValue(key, fallback)!; }
        catch (InvalidOperationException e) { throw new CliException($"bad setting {section.Path}:{key}: {e.InnerException?.Message ?? e.Message}"); }
    }
}
