using CowDisk.Engine.Devices;
using CowDisk.Engine.Frontends.Fuse;
using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// The life of one attachment inside its daemon: image → FUSE file → loop device → /dev/cowdisk/NAME, and the
/// record that tells list and detach about it. Stop undoes it in reverse: link, loop device, mount, image.
/// </summary>
public sealed class AttachSession : RegisteredSession
{
    private static readonly TimeSpan LoopReleaseTimeout = TimeSpan.FromSeconds(10);

    private IBlockDevice? _device;
    private FuseServer? _fuse;
    private LoopDevice? _loop;
    private ControlServer? _control;
    private Nbd.NbdServer? _nbd;
    private string? _link;

    /// <summary>What the user should hear at once (on stderr), beside the log: the io_uring switch turned on, a fallback.</summary>
    public IReadOnlyList<string> Notices { get; private set; } = [];

    private AttachSession(AttachRegistry registry, AttachRecord record, LifetimeLock claim, Action<string> log)
        : base(registry, record, claim, log) { }

    /// <summary>Brings the attachment up; on failure everything done so far is undone before the exception.</summary>
    public static AttachSession Start(AttachRequest request, AttachRegistry registry, Action<string> log)
    {
        AttachPrerequisites.Check();
        AttachName.Validate(request.Name);
        if (request.Overlay && request.ReadOnly) throw new AttachException("--overlay and --read-only exclude each other");
        if (request.Snapshot is not null && request.ReadOnly && request.Overlay)
            throw new AttachException("--overlay and --read-only exclude each other");
        // A snapshot is served read-only; with --overlay, a new clone of it takes the writes.
        if (request.Snapshot is not null && !request.Overlay) request = request with { ReadOnly = true };
        string image = Path.GetFullPath(request.Image);
        if (Directory.Exists(image)) throw new AttachException($"image {image} is a folder, not an image (name its data file)");
        if (!File.Exists(CanonicalPath.Of(image))) throw new AttachException($"image {image} does not exist");   // not a dangling link

        var claim = registry.ClaimForDaemon(request.Name);

        string? overlay = request.Overlay ? AttachRequest.OverlayPathFor(image, request.Name) : null;
        var record = new AttachRecord
        {
            Name = request.Name, Image = image, Overlay = overlay, Snapshot = request.Snapshot, Pid = Environment.ProcessId, ReadOnly = request.ReadOnly,
            Started = DateTimeOffset.Now, State = AttachState.Starting,
        };
        var session = new AttachSession(registry, record, claim, log);
        try
        {
            session.Bringup(request, image, overlay);
            return session;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private void Bringup(AttachRequest request, string image, string? overlay)
    {
        // A snapshot view may be served while another attachment writes the image: that writer serves its mappings.
        if (request.Snapshot is null) CheckConflicts(image, wantsWrite: !request.ReadOnly && overlay is null);
        if (overlay is not null)
        {
            if (File.Exists(overlay)) throw new AttachException($"overlay {overlay} already exists; attach it directly or remove it");
            AttachedImage.CreateOverlay(overlay, image, request.Engine, request.Snapshot);
        }
        Registry.Write(Record);

        string served = overlay ?? image;
        try { _device = AttachedImage.Open(served, request.ReadOnly, request.Engine, overlay is null ? request.Snapshot : null); }
        catch (BlockDeviceException error) when (error is not CorruptImageException)
        {
            CheckConflicts(served, wantsWrite: !request.ReadOnly); // a racing attach: name it if we can
            // The engine's messages mostly name the file already; say it once.
            throw new AttachException(error.Message.Contains(served, StringComparison.Ordinal) ? error.Message : $"cannot open {served}: {error.Message}");
        }

        string mountPoint = Registry.Paths.MountPoint(Record.Name);
        _fuse = new FuseServer(_device, new FuseServerOptions
        {
            MountPoint = mountPoint, SourceName = $"cowdisk:{Record.Name}", WorkerThreads = request.FuseThreads, Log = Log,
            Transport = request.IoUring || request.RequireIoUring ? FuseTransport.IoUring : FuseTransport.DevFuse,
            RequireIoUring = request.RequireIoUring,
            PollMicroseconds = request.Engine.PollMicroseconds,
            IoUringServeDataInline = !request.Engine.DirectIo,   // page cache on: reads and writes rarely wait on the disk
            IoUringSwitchTurnedOn = () =>
            {
                Record = Record with { TurnedOnIoUring = true };
                Registry.Write(Record);   // before anything can hang: a killed daemon's cleanup then turns it off
            },
        });
        Record = Record with { MountPoint = mountPoint };
        try { _fuse.Start(); }
        catch (FuseUnavailableException e) when (request.RequireIoUring) { throw new AttachException(e.Message); }
        Log($"fuse: mounted {mountPoint}, kernel protocol {_fuse.KernelProtocol}, max write {_fuse.Negotiated?.MaxWrite}, {request.FuseThreads} workers, transport {_fuse.ActiveTransport}");
        Record = Record with { Transport = _fuse.ActiveTransport, TurnedOnIoUring = _fuse.TurnedOnIoUring };
        var notices = new List<string>();
        if (_fuse.TurnedOnIoUring)
            notices.Add($"turned on FUSE over io_uring ({Fuse.FuseUringSwitch.ParameterPath}); it goes back off when this attachment ends");
        if (_fuse.IoUringFallback is { } why) notices.Add($"FUSE over io_uring is not available ({why}); serving through /dev/fuse");
        Notices = notices;

        _loop = LoopDevice.Bind(_fuse.FilePath, request.ReadOnly, directIo: true);
        Log($"loop: {_loop.DevicePath} bound with {_loop.BindMethod}, direct I/O {(_loop.DirectIo ? "on" : "off")}");

        _link = Registry.Paths.LinkPath(Record.Name);
        if (File.Exists(_link) || new FileInfo(_link).LinkTarget is not null) File.Delete(_link);
        File.CreateSymbolicLink(_link, _loop.DevicePath);

        if (_device is Images.CowImage { ReadOnly: false } writable)
            _control = new ControlServer(Registry.Paths.ControlSocket(Record.Name), writable, Log);

        if (request.NbdTcp is not null || request.NbdUnix)
        {
            if (request.NbdTcp is { } tcp && !System.Net.IPAddress.IsLoopback(tcp.Address))
                throw new AttachException($"attach --nbd listens on loopback or a Unix socket only, not {tcp}");
            _nbd = new Nbd.NbdServer(new Nbd.NbdServerOptions
            {
                Exports = [new Nbd.NbdExport { Name = Record.Name, Description = Path.GetFileName(served), Device = _device, ReadOnly = request.ReadOnly }],
                Tcp = request.NbdTcp, UnixSocket = request.NbdUnix ? Registry.Paths.NbdSocket(Record.Name) : null, Log = Log,
            });
            try { _nbd.Start(); }
            catch (IOException e) { throw new AttachException(e.Message); }
            Record = Record with { Nbd = [.. _nbd.Addresses] };
            Log($"nbd: serving at {string.Join(" ", _nbd.Addresses)}");
        }

        Record = Record with
        {
            State = AttachState.Running, Device = _loop.DevicePath, Link = _link, BackingFile = _fuse.FilePath, DirectIo = _loop.DirectIo,
        };
        Registry.Write(Record);
    }

    private void CheckConflicts(string image, bool wantsWrite)
    {
        if (Registry.FindConflict(image, wantsWrite, Record.Name) is { } holder)
            throw new AttachException(
                $"image {image} is already attached{(holder.ReadOnly ? " read-only" : " read-write")} as '{holder.Name}' (pid {holder.Pid})");
    }

    protected override List<string> Teardown()
    {
        var errors = new List<string>();
        if (_control is not null) Step(errors, "close control socket", _control.Dispose);
        _control = null;
        if (_nbd is not null) Step(errors, "stop NBD server", _nbd.Stop);   // its requests answered before the device goes
        _nbd = null;
        if (_link is not null) Step(errors, "remove link", () => AttachRegistry.RemoveLinkIfPointsTo(_link, _loop?.DevicePath));
        if (_loop is not null)
            Step(errors, "detach loop device", () =>
            {
                if (!_loop.Detach(LoopReleaseTimeout))
                    Log($"loop: {_loop.DevicePath} is still open elsewhere; the kernel frees it when it is closed");
            });
        bool frontendStopped = _fuse is null;   // if Stop throws, a worker may still be running
        if (_fuse is not null) Step(errors, "unmount", () => frontendStopped = _fuse.Stop());
        if (_device is not null)
        {
            // Flushed on its own first: a close that cannot flush (the engine failed earlier) must not pass as
            // clean. Not while a worker may still hold the drain lock inside a call: the flush would wait for ever.
            if (frontendStopped) Step(errors, "flush image", _device.Flush);
            Step(errors, "close image", () => CloseImage(_device, frontendStopped));
        }
        _link = null;
        _loop = null;
        _fuse = null;
        _device = null;
        return errors;
    }

    /// <summary>
    /// Closes the image, unless a frontend worker may still be inside a call on it: closing would free the
    /// ring's native memory under that call. Then the image is deliberately left open (not flushed, not marked
    /// clean: the next open recovers it) until the process exits, and the shutdown reports a failure.
    /// </summary>
    internal static void CloseImage(IBlockDevice device, bool frontendStopped)
    {
        if (!frontendStopped)
            throw new AttachException("a FUSE worker did not stop, so the image was left open (not flushed, not marked clean) until the daemon exits");
        device.Dispose();
    }
}
