using CowDisk.Engine.Frontends.Attach;

namespace CowDisk.Cli.Attach;

/// <summary>The attach daemon: brings the attachment up, reports the device, then serves until told to stop.</summary>
internal static class AttachDaemon
{
    public static int Run(AttachRequest request) => DaemonHost.Run(request.Name,
        $"attaching {request.Image} as '{request.Name}' (pid {Environment.ProcessId}{(request.ReadOnly ? ", read-only" : "")}{(request.Overlay ? ", overlay" : "")})",
        log =>
        {
            var registry = new AttachRegistry(AttachPaths.FromEnvironment());
            var session = AttachSession.Start(request, registry, log);
            var record = session.Record;
            var lines = new List<string>();
            if (record.Overlay is not null) lines.Add($"overlay: {record.Overlay}");
            lines.Add(record.Device!);
            lines.Add(record.Link!);
            if (record.Nbd is { } nbd) lines.AddRange(nbd.Select(uri => $"nbd: {uri}"));
            return new DaemonSession(session, lines, $"ready: {record.Device} ({record.Link}), direct I/O {(record.DirectIo == true ? "on" : "off")}, FUSE through {record.Transport ?? "dev-fuse"}", session.Stop)
            {
                Notices = session.Notices,
            };
        },
        "detached cleanly");
}
