using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// A running read-write attachment's control socket (mode 0600, beside its record): the CLI's snapshot create,
/// list and delete reach the image here, since the daemon holds its lock. A snapshot is taken in ring order,
/// after every write the device acknowledged, while the device stays in use.
/// </summary>
internal sealed class ControlServer : IDisposable
{
    private const int MaxRequestBytes = 4096;
    private readonly Socket _listener;
    private readonly CowImage _image;
    private readonly Action<string> _log;
    private readonly Thread _thread;
    private readonly string _path;
    private volatile bool _stopping;

    public ControlServer(string path, CowImage image, Action<string> log)
    {
        _path = path; _image = image; _log = log;
        if (File.Exists(path)) File.Delete(path);   // left by a daemon that died
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // Connecting needs write permission on the socket; umask 022 already denies it to others, 0600 makes it explicit.
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(8);
        _thread = new Thread(Run) { IsBackground = true, Name = "cowdisk-control" };
        _thread.Start();
    }

    private void Run()
    {
        while (!_stopping)
        {
            Socket client;
            try { client = _listener.Accept(); }
            catch (Exception) when (_stopping) { return; }
            catch (SocketException e) { _log($"control: accept failed: {e.Message}"); continue; }
            using (client)
            {
                client.ReceiveTimeout = client.SendTimeout = 10_000;
                try { Serve(client); }
                catch (Exception e) when (e is IOException or SocketException or JsonException or DecoderFallbackException)
                {
                    _log($"control: bad request: {e.Message}");
                }
            }
        }
    }

    private void Serve(Socket client)
    {
        using var stream = new NetworkStream(client, ownsSocket: false);
        var buffer = new byte[MaxRequestBytes];
        int length = 0;
        while (length < buffer.Length)
        {
            int n = stream.Read(buffer, length, buffer.Length - length);
            if (n == 0) break;
            length += n;
            if (Array.IndexOf(buffer, (byte)'\n', 0, length) >= 0) break;
        }
        var request = JsonSerializer.Deserialize(buffer.AsSpan(0, length).TrimEnd((byte)'\n'), ControlJsonContext.Default.ControlRequest);
        var reply = request is null ? new ControlReply(false, "empty request") : Handle(request);
        stream.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(reply, ControlJsonContext.Default.ControlReply) + "\n"));
    }

    private ControlReply Handle(ControlRequest request)
    {
        try
        {
            switch (request.Op)
            {
                case "snapshot-create":
                    var created = _image.CreateSnapshot(request.Name ?? "");
                    _log($"control: created snapshot '{created.Name}'");
                    return new ControlReply(true, Snapshot: created);
                case "snapshot-delete":
                    var deleted = _image.DeleteSnapshot(request.Name ?? "");
                    _log($"control: deleted snapshot '{deleted.Name}'");
                    return new ControlReply(true, Snapshot: deleted);
                case "snapshot-list":
                    return new ControlReply(true, Snapshots: _image.ListSnapshots().ToList());
                case "map":
                    return new ControlReply(true, Runs: _image.Map());
                case "diff":   // Name: from, Path: to (snapshot names; null for the live disk)
                    return new ControlReply(true, Ranges: _image.Diff(request.Name, request.Path).Select(r => new[] { r.Offset, r.Length }).ToList());
                case "snapshot-export":
                    // The caller made the file (0600, in the run folder) and holds the image's view lock.
                    // Only a plain file the caller made beside this socket, never through a link.
                    if (request.Path is null || Path.GetDirectoryName(Path.GetFullPath(request.Path)) != Path.GetDirectoryName(_path) ||
                        new FileInfo(request.Path) is not { Exists: true, LinkTarget: null })
                        return new ControlReply(false, "snapshot-export needs a file made for it in the attachment's run folder");
                    var (records, epoch) = _image.ExportSnapshot(request.Name ?? "");
                    using (var export = new FileStream(request.Path, FileMode.Open, FileAccess.Write, FileShare.None))
                    {
                        export.SetLength(0);
                        export.Write(records);
                    }
                    return new ControlReply(true, Image: new ExportedImage(_image.Geometry.ClusterSize, _image.Size,
                        _image.BackingFile is null ? null : _image.Files.ResolveBacking(_image.BackingFile), _image.DataDevice, _image.ImageId, epoch));
                case "clone-register":
                    if (request.Path is null || request.Id is null) return new ControlReply(false, "clone-register needs a path and an id");
                    var source = _image.RegisterClone(request.Name ?? "", request.Id.Value, request.Path);
                    _log($"control: clone {request.Path} registered on snapshot '{source.Name}'");
                    return new ControlReply(true, Snapshot: source);
                default:
                    return new ControlReply(false, $"unknown control request '{request.Op}'");
            }
        }
        catch (BlockDeviceException e) { return new ControlReply(false, e.Message); }
    }

    public void Dispose()
    {
        _stopping = true;
        try { _listener.Shutdown(SocketShutdown.Both); } catch (SocketException) { }
        _listener.Close();
        _thread.Join(TimeSpan.FromSeconds(15));
        try { File.Delete(_path); } catch (IOException) { }
    }
}
