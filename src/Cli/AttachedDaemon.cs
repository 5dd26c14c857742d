using CowDisk.Engine.Frontends.Attach;

namespace CowDisk.Cli;

/// <summary>The running read-write attachment of an image, which holds its lock and is asked instead of opening it.</summary>
public static class AttachedDaemon
{
    public static AttachRecord? Writing(string path)
    {
        try { return new AttachRegistry(AttachPaths.FromEnvironment()).FindWriter(Path.GetFullPath(path)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    public static ControlReply Ask(AttachRecord attached, ControlRequest request)
    {
        var socket = AttachPaths.FromEnvironment().ControlSocket(attached.Name);
        ControlReply reply;
        try { reply = ControlClient.Send(socket, request, TimeSpan.FromSeconds(120)); }
        catch (AttachException e) { throw new CliException(e.Message); }
        if (!reply.Ok) throw new CliException(reply.Error ?? "the attachment refused the request");
        return reply;
    }
}
