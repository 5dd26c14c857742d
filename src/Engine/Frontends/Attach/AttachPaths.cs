namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// Where attachments keep their state. RunDirectory holds NAME.json (the record), NAME.lock (held by the live
/// daemon), NAME.detach (held by a detach waiting for the daemon's outcome), NAME.log, NAME.fuse/ (the private
/// FUSE mount), NAME.ctl (a writer's control socket) and NAME.sock (an NBD socket); LinkDirectory holds the stable device links.
/// </summary>
public sealed record AttachPaths(string RunDirectory, string LinkDirectory)
{
    public const string RunDirectoryVariable = "COWDISK_RUN_DIR";
    public const string DefaultRunDirectory = "/run/cowdisk";
    public const string DefaultLinkDirectory = "/dev/cowdisk";

    /// <summary>
    /// The defaults, with the run directory overridable through COWDISK_RUN_DIR. Root uses /run/cowdisk; other
    /// users (who can serve but not attach) their own $XDG_RUNTIME_DIR/cowdisk.
    /// </summary>
    public static AttachPaths FromEnvironment() =>
        new(Environment.GetEnvironmentVariable(RunDirectoryVariable) is { Length: > 0 } run ? Path.GetFullPath(run)
            : !Native.ProcessControl.IsRoot && Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } user ? Path.Combine(user, "cowdisk")
            : DefaultRunDirectory,
            DefaultLinkDirectory);

    public string RecordPath(string name) => Path.Combine(RunDirectory, name + ".json");
    public string LockPath(string name) => Path.Combine(RunDirectory, name + ".lock");
    public string DetachLockPath(string name) => Path.Combine(RunDirectory, name + ".detach");
    public string LogPath(string name) => Path.Combine(RunDirectory, name + ".log");
    /// <summary>A read-write attachment's control socket: snapshot create, list and delete while attached.</summary>
    public string ControlSocket(string name) => Path.Combine(RunDirectory, name + ".ctl");
    /// <summary>The NBD socket of `serve` (and of `attach --nbd unix`), mode 0600.</summary>
    public string NbdSocket(string name) => Path.Combine(RunDirectory, name + ".sock");
    public string MountPoint(string name) => Path.Combine(RunDirectory, name + ".fuse");
    public string LinkPath(string name) => Path.Combine(LinkDirectory, name);
}
