using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>
/// A test that makes its qcow2 fixtures with qemu-img and qemu-io at test time. Outside CI it is skipped when
/// one is missing; with CI=true it runs anyway and fails, so a broken CI machine cannot pass by skipping.
/// </summary>
public sealed class Qcow2ToolFactAttribute : FactAttribute
{
    public static readonly string[] Tools = ["qemu-img", "qemu-io"];

    public Qcow2ToolFactAttribute()
    {
        if (Missing() is { } missing && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = $"needs {missing} (set CI=true to make this a failure)";
    }

    public static string? Missing() =>
        Tools.FirstOrDefault(tool => !(Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Any(dir => File.Exists(Path.Combine(dir, tool))));
}

/// <summary>The theory form of <see cref="Qcow2ToolFactAttribute"/>.</summary>
public sealed class Qcow2ToolTheoryAttribute : TheoryAttribute
{
    public Qcow2ToolTheoryAttribute()
    {
        if (Qcow2ToolFactAttribute.Missing() is { } missing && Environment.GetEnvironmentVariable("CI") != "true")
            Skip = $"needs {missing} (set CI=true to make this a failure)";
    }
}
