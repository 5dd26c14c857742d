using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// Snapshot views of an image a running read-write attachment holds: the view lock is taken on the image file
/// first (so the snapshot cannot be deleted from then on), the daemon exports the snapshot's mappings through
/// its control socket, and the data is read straight from the image.
/// </summary>
public static class HeldSnapshotViews
{
    /// <summary>Makes BaseImage ask running attachments for snapshots of the images they hold.</summary>
    public static void Install() => BaseImage.HeldSnapshotOpener = Open;

    /// <summary>The view, or null when no running attachment writes the image.</summary>
    public static IBlockDevice? Open(string imagePath, string snapshot)
    {
        var paths = AttachPaths.FromEnvironment();
        var writer = new AttachRegistry(paths).FindWriter(imagePath);
        if (writer is null) return null;
        var image = ImageFiles.For(Path.GetFullPath(imagePath)).DataPath;
        var held = File.OpenHandle(image, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        string exportFile = Path.Combine(paths.RunDirectory, $"{writer.Name}.view-{Guid.NewGuid():N}");
        try
        {
            bool locked = false;
            for (int i = 0; i < 50 && !(locked = SnapshotViewLockAccess.TryHold(held)); i++) Thread.Sleep(10);   // a delete checks it for a moment
            if (!locked) throw new ImageOpenException($"cannot hold a view of {image}: a snapshot is being deleted");
            using (File.Create(exportFile)) { }
            File.SetUnixFileMode(exportFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var reply = ControlClient.Send(paths.ControlSocket(writer.Name), new ControlRequest("snapshot-export", snapshot, exportFile), TimeSpan.FromSeconds(120));
            if (!reply.Ok) throw new ImageOpenException(reply.Error ?? $"attachment '{writer.Name}' could not export snapshot '{snapshot}'");
            var info = reply.Image!;
            return SnapshotView.Open(image, snapshot, info.ImageId, info.Epoch, info.ClusterSize, info.VirtualSize, File.ReadAllBytes(exportFile),
                info.Backing, info.DataDevice, held);
        }
        catch
        {
            held.Dispose();
            throw;
        }
        finally
        {
            try { File.Delete(exportFile); } catch (IOException) { }
        }
    }
}
