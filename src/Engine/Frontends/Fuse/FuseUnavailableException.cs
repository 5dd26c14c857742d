namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>The machine cannot serve FUSE: no /dev/fuse, or mounting is not permitted.</summary>
public sealed class FuseUnavailableException(string message) : IOException(message);
