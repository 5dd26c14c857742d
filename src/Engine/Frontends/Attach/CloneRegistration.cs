namespace CowDisk.Engine.Frontends.Attach;

/// <summary>Registers a new clone with its snapshot through the running attachment that holds the image, if any.</summary>
public static class CloneRegistration
{
    /// <summary>A registration through the attachment writing the image, or null to open the image directly.</summary>
    public static Action<string, Guid, string>? Through(string imagePath)
    {
        var paths = AttachPaths.FromEnvironment();
        AttachRecord? writer;
        try { writer = new AttachRegistry(paths).FindWriter(Path.GetFullPath(imagePath)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        if (writer is null) return null;
        return (snapshot, id, clonePath) =>
        {
            var reply = ControlClient.Send(paths.ControlSocket(writer.Name), new ControlRequest("clone-register", snapshot, clonePath, id), TimeSpan.FromSeconds(60));
            if (!reply.Ok) throw new Images.ImageOpenException(reply.Error ?? $"attachment '{writer.Name}' refused to register the clone");
        };
    }
}
