namespace CowDisk.Tests;

/// <summary>External programs a test needs: found on the PATH, or named as missing.</summary>
public static class ToolPrerequisites
{
    /// <summary>The first of tools not on the PATH, or null when all are there.</summary>
    public static string? Missing(IEnumerable<string> tools) =>
        tools.FirstOrDefault(tool => !(Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Any(dir => File.Exists(Path.Combine(dir, tool))));

    /// <summary>A skip reason outside CI when something is missing; under CI=true null, so the test runs and fails.</summary>
    public static string? SkipReason(string? missing) =>
        missing is not null && Environment.GetEnvironmentVariable("CI") != "true" ? $"needs {missing} (set CI=true to make this a failure)" : null;
}
