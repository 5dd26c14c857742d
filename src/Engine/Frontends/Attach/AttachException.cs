namespace CowDisk.Engine.Frontends.Attach;

/// <summary>An attach, list or detach that cannot go ahead; the message is the one line a user sees.</summary>
public sealed class AttachException(string message) : Exception(message);
