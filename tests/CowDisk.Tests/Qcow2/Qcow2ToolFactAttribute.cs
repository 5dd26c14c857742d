using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>
/// A test that makes its qcow2 fixtures with qemu-img and qemu-io at test time. Outside CI it is skipped when
/// one is missing; with CI=true it runs anyway and fails, so a broken CI machine cannot pass by skipping.
/// </summary>
public sealed class Qcow2ToolFactAttribute : FactAttribute
{
    public static readonly string[] Tools = ["qemu-img", "qemu-io"];

    public Qcow2ToolFactAttribute() => Skip = ToolPrerequisites.SkipReason(Missing());

    public static string? Missing() => ToolPrerequisites.Missing(Tools);
}

/// <summary>The theory form of <see cref="Qcow2ToolFactAttribute"/>.</summary>
public sealed class Qcow2ToolTheoryAttribute : TheoryAttribute
{
    public Qcow2ToolTheoryAttribute() => Skip = ToolPrerequisites.SkipReason(Qcow2ToolFactAttribute.Missing());
}
