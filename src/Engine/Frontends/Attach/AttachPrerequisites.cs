using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>What the machine must offer before attach can work; each failure names the missing piece.</summary>
public static class AttachPrerequisites
{
    public const string FuseDevice = "/dev/fuse";

    /// <summary>Throws <see cref="AttachException"/> naming the first thing that is missing.</summary>
    public static void Check()
    {
        if (!ProcessControl.IsRoot) throw new AttachException("must run as root (attach mounts FUSE and binds loop devices)");
        if (!File.Exists(FuseDevice)) throw new AttachException($"no {FuseDevice} (load the fuse module: modprobe fuse)");
        if (!File.Exists(LoopDevice.ControlPath)) throw new AttachException($"no {LoopDevice.ControlPath} (load the loop module: modprobe loop)");
    }

    /// <summary>Only root can signal the daemon, unmount and unbind; list works for anyone.</summary>
    public static void CheckRoot(string what)
    {
        if (!ProcessControl.IsRoot) throw new AttachException($"must run as root to {what}");
    }
}
