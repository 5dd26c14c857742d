using Xunit;

namespace CowDisk.Tests.Nbd;

/// <summary>
/// A test that drives real NBD clients (qemu-img, qemu-io, nbdinfo, nbdcopy) and openssl. Outside CI it is
/// skipped when one is missing; with CI=true it runs anyway and fails, so a broken CI machine cannot pass by skipping.
/// </summary>
public sealed class NbdToolFactAttribute : FactAttribute
{
    public static readonly string[] Tools = ["qemu-img", "qemu-io", "nbdinfo", "nbdcopy", "openssl"];

    public NbdToolFactAttribute() => Skip = ToolPrerequisites.SkipReason(Missing());

    public static string? Missing() => ToolPrerequisites.Missing(Tools);
}

/// <summary>Needs both the NBD client tools and what attach needs (root, /dev/fuse, loop devices); skipped outside CI when one is missing.</summary>
public sealed class NbdAttachFactAttribute : FactAttribute
{
    public NbdAttachFactAttribute() => Skip = ToolPrerequisites.SkipReason(NbdToolFactAttribute.Missing() ?? Attach.AttachFactAttribute.MissingPrerequisite());
}
