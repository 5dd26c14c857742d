using CowDisk.Engine.Devices;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// The life of one `cowdisk serve` inside its process: images opened, an NBD server on them, and a record in the
/// attach registry so list and detach see it. Stop answers what is in flight, flushes and closes the images.
/// </summary>
public sealed class ServeSession : RegisteredSession
{
    private readonly List<IBlockDevice> _devices = [];
    private NbdServer? _server;
    private ControlServer? _control;

    public IReadOnlyList<string> Addresses => _server?.Addresses ?? [];

    private ServeSession(AttachRegistry registry, AttachRecord record, LifetimeLock claim, Action<string> log)
        : base(registry, record, claim, log) { }

    /// <summary>Opens the images and starts serving; on failure everything done so far is undone.</summary>
    public static ServeSession Start(ServeRequest request, AttachRegistry registry, Action<string> log)
    {
        AttachName.Validate(request.Name);
        if (request.Images.Count == 0) throw new AttachException("nothing to serve");
        foreach (var duplicate in request.Images.GroupBy(i => i.ExportName).Where(g => g.Count() > 1))
            throw new AttachException($"two images would be exported as '{duplicate.Key}'; name them apart (--name applies to one image)");
        var images = request.Images.Select(i => i with { Image = Path.GetFullPath(i.Image) }).ToList();
        foreach (var image in images)
        {
            if (Directory.Exists(image.Image)) throw new AttachException($"image {image.Image} is a folder, not an image (name its data file)");
            if (!File.Exists(CanonicalPath.Of(image.Image))) throw new AttachException($"image {image.Image} does not exist");
        }
        var claim = registry.ClaimForDaemon(request.Name);
        var record = new AttachRecord
        {
            Name = request.Name, Image = images[0].Image, Snapshot = images[0].Snapshot, Pid = Environment.ProcessId,
            ReadOnly = request.ReadOnly || images[0].Snapshot is not null, Started = DateTimeOffset.Now, State = AttachState.Starting,
        };
        var session = new ServeSession(registry, record, claim, log);
        try
        {
            session.Bringup(request, images);
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private void Bringup(ServeRequest request, List<ServedImage> images)
    {
        var exports = new List<NbdExport>();
        foreach (var image in images)
        {
            bool readOnly = request.ReadOnly || image.Snapshot is not null;
            if (image.Snapshot is null && Registry.FindConflict(image.Image, !readOnly, Record.Name) is { } holder)
                throw new AttachException($"image {image.Image} is already {(holder.Nbd is not null && holder.Device is null ? "served" : "attached")}" +
                                          $"{(holder.ReadOnly ? " read-only" : " read-write")} as '{holder.Name}' (pid {holder.Pid})");
            if (!readOnly && image.Snapshot is null && Images.BaseImage.Probe(image.Image) is var format && format != Images.BaseImage.CowDiskFormat)
                throw new AttachException($"{image.Image} is a {format} image, which cowdisk serves only with --read-only " +
                                          $"(to take writes, serve an overlay: cowdisk create top.img --backing {Path.GetFileName(image.Image)})");
            IBlockDevice device;
            try { device = AttachedImage.Open(image.Image, readOnly, request.Engine, image.Snapshot); }
            catch (BlockDeviceException error) when (error is not CorruptImageException)
            {
                throw new AttachException(error.Message.Contains(image.Image, StringComparison.Ordinal) ? error.Message : $"cannot open {image.Image}: {error.Message}");
            }
            _devices.Add(device);
            // The file name only: a client need not learn the server's folders.
            string what = Path.GetFileName(image.Image) + (image.Snapshot is null ? "" : $"@{image.Snapshot}");
            exports.Add(new NbdExport { Name = image.ExportName, Description = what, Device = device, ReadOnly = readOnly });
        }
        Registry.Write(Record);
        // The first image, served writable, takes snapshot commands like an attached one (found through the record).
        if (_devices[0] is Images.CowImage { ReadOnly: false } writable)
            _control = new ControlServer(Registry.Paths.ControlSocket(Record.Name), writable, Log);
        _server = new NbdServer(new NbdServerOptions
        {
            Exports = exports, UnixSocket = request.UnixSocket, Tcp = request.Tcp, TlsCertificate = request.TlsCertificate,
            RequireTls = request.RequireTls, Log = Log,
        });
        try { _server.Start(); }
        catch (IOException e) { throw new AttachException(e.Message); }
        Record = Record with { State = AttachState.Running, Nbd = [.. _server.Addresses] };
        Registry.Write(Record);
    }

    protected override List<string> Teardown()
    {
        var errors = new List<string>();
        if (_control is not null) Step(errors, "close control socket", _control.Dispose);
        _control = null;
        if (_server is not null) Step(errors, "stop NBD server", _server.Stop);
        _server = null;
        foreach (var device in _devices)
        {
            // Flushed on its own first: a close that cannot flush must not pass as clean.
            Step(errors, "flush image", device.Flush);
            Step(errors, "close image", device.Dispose);
        }
        _devices.Clear();
        return errors;
    }
}
