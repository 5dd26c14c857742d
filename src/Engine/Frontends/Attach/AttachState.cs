namespace CowDisk.Engine.Frontends.Attach;

/// <summary>The states an attachment's record goes through; the last two are the daemon's outcome.</summary>
public static class AttachState
{
    public const string Starting = "starting";
    public const string Running = "running";
    public const string Stopping = "stopping";
    /// <summary>Shut down cleanly: the image was flushed and closed. Written just before the daemon exits.</summary>
    public const string Detached = "detached";
    /// <summary>Shut down, but something failed (Error says what); the image may not be closed cleanly.</summary>
    public const string Failed = "failed";
    /// <summary>Shown by list for a daemon that died without an outcome.</summary>
    public const string Stale = "stale";
}
