using System.CommandLine;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using CowDisk.Cli.Attach;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Frontends.Nbd;
using CowDisk.Engine.Images;

namespace CowDisk.Cli.Commands;

/// <summary>cowdisk serve: images and snapshots over NBD, for qemu, qemu-img and libnbd clients.</summary>
public static class ServeCommand
{
    public const int DefaultPort = 10809;

    public static Command Build()
    {
        var images = new Argument<string[]>("image") { Description = "Images to export (IMAGE@SNAPSHOT: a snapshot, read-only)", Arity = ArgumentArity.OneOrMore };
        var name = new Option<string?>("--name") { Description = "Name in `cowdisk list` and of the default socket; the export name when one image is served" };
        var listen = new Option<string?>("--listen") { Description = "TCP address HOST[:PORT] (port 10809 by default) instead of a Unix socket" };
        var socket = new Option<string?>("--socket") { Description = "Unix socket path (default /run/cowdisk/NAME.sock)" };
        var readOnly = new Option<bool>("--read-only") { Description = "Refuse writes from clients" };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "PEM certificate: clients must use TLS (NBD_OPT_STARTTLS)" };
        var tlsKey = new Option<string?>("--tls-key") { Description = "PEM private key of --tls-cert" };
        var insecure = new Option<bool>("--insecure") { Description = "Allow listening on a non-loopback address without TLS" };
        var daemon = new Option<bool>("--daemon") { Description = "Run in the background (stop it with `cowdisk detach NAME`)" };
        var cmd = new Command("serve", "Serve images over NBD until SIGTERM or Ctrl+C (or `cowdisk detach NAME` with --daemon)")
        {
            images, name, listen, socket, readOnly, tlsCert, tlsKey, insecure, daemon,
        };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            // Before anything is read: a one-shot input (a pipe as --tls-key or --config) can be read only once.
            if (!r.GetValue(daemon)) ServerBuild.HandOver();
            try
            {
                foreach (string text in r.GetValue(images)!)
                    if (text.StartsWith('-') && !File.Exists(text)) throw new CliException($"unknown option {text} (try 'cowdisk serve --help')");
                var refs = r.GetValue(images)!.Select(ImageRef.Parse).ToList();
                string? given = r.GetValue(name);
                if (given is not null && refs.Count > 1)
                    throw new CliException("--name names the export of a single image; with several, each is exported under its file name");
                string registryName = given ?? DefaultName(refs[0]);
                AttachName.Validate(registryName);
                var served = refs.Select(i => new ServedImage(Path.GetFullPath(i.Path), i.Snapshot, refs.Count == 1 ? registryName : DefaultName(i))).ToList();
                foreach (var image in served)
                {
                    ImagePath.RequireNotFolder(image.Image);
                    if (!File.Exists(image.Image)) throw new CliException($"image {image.Image} does not exist");
                }
                var tcp = r.GetValue(listen) is { } address ? ParseListen(address) : null;
                if (tcp is not null && r.GetValue(socket) is not null) throw new CliException("--listen and --socket exclude each other");
                var certificate = LoadCertificate(r.GetValue(tlsCert), r.GetValue(tlsKey));
                bool exposed = tcp is not null && !IPAddress.IsLoopback(tcp.Address);
                if (exposed && certificate is null && !r.GetValue(insecure))
                    throw new CliException($"listening on {tcp} lets anyone on the network {(r.GetValue(readOnly) ? "read" : "read and write")} the disk: give --tls-cert and --tls-key, or --insecure");
                var registry = new AttachRegistry(AttachPaths.FromEnvironment());
                var request = new ServeRequest
                {
                    Name = registryName, Images = served, ReadOnly = r.GetValue(readOnly), Tcp = tcp,
                    UnixSocket = tcp is null ? Path.GetFullPath(r.GetValue(socket) ?? registry.Paths.NbdSocket(registryName)) : null,
                    TlsCertificate = certificate, RequireTls = certificate is not null, Engine = GlobalOptions.Engine(r),
                };
                if (!r.GetValue(daemon)) return Run(request);

                if (registry.IsTaken(registryName)) throw new CliException($"name '{registryName}' is already in use (see `cowdisk list`)");
                registry.EnsureDirectories();
                var arguments = new List<string> { "serve" };
                arguments.AddRange(refs.Select(i => Path.GetFullPath(i.Path) + (i.Snapshot is null ? "" : "@" + i.Snapshot)));
                arguments.AddRange(["--name", registryName]);
                if (r.GetValue(listen) is { } l) arguments.AddRange(["--listen", l]);
                if (request.UnixSocket is { } unix) arguments.AddRange(["--socket", unix]);
                if (request.ReadOnly) arguments.Add("--read-only");
                if (r.GetValue(tlsCert) is { } c) arguments.AddRange(["--tls-cert", Path.GetFullPath(c)]);
                if (r.GetValue(tlsKey) is { } k) arguments.AddRange(["--tls-key", Path.GetFullPath(k)]);
                if (r.GetValue(insecure)) arguments.Add("--insecure");
                if (r.GetValue(GlobalOptions.Config) is { } config) arguments.AddRange(["--config", Path.GetFullPath(config)]);
                foreach (string set in r.GetValue(GlobalOptions.Set) ?? []) arguments.AddRange(["--set", set]);
                return AttachLauncher.Launch(arguments, registry, registryName);
            }
            catch (AttachException error) { throw new CliException(error.Message); }
        }));
        return cmd;
    }

    private static int Run(ServeRequest request) => DaemonHost.Run(request.Name,
        $"serving {string.Join(", ", request.Images.Select(i => i.Snapshot is null ? i.Image : $"{i.Image}@{i.Snapshot}"))} as '{request.Name}' (pid {Environment.ProcessId}{(request.ReadOnly ? ", read-only" : "")})",
        log =>
        {
            var session = ServeSession.Start(request, new AttachRegistry(AttachPaths.FromEnvironment()), log);
            var lines = session.Addresses.ToList();
            if (request.Images.Count > 1) lines.Add($"exports: {string.Join(", ", request.Images.Select(i => i.ExportName))}");
            return new DaemonSession(session, lines, $"ready: {string.Join(" ", session.Addresses)}", session.Stop);
        },
        "stopped cleanly");

    /// <summary>The image's file name without extension (and the snapshot's name), made a valid attachment name.</summary>
    private static string DefaultName(ImageRef image)
    {
        string stem = Path.GetFileNameWithoutExtension(image.Path) + (image.Snapshot is null ? "" : "-" + image.Snapshot);
        var chars = stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '-').ToArray();
        string name = new string(chars).TrimStart('.', '-');
        return name.Length == 0 ? "disk" : name[..Math.Min(name.Length, AttachName.MaxLength)];
    }

    public static IPEndPoint ParseListen(string text)
    {
        string host = text;
        int port = DefaultPort;
        int colon = text.LastIndexOf(':');
        if (colon >= 0 && (text.IndexOf(':') == colon || text.StartsWith('[')))   // host:port, or [v6]:port
        {
            host = text[..colon];
            if (!int.TryParse(text[(colon + 1)..], out port) || port is < 0 or > 65535)
                throw new CliException($"--listen {text}: the port must be 0-65535");
        }
        host = host.Trim('[', ']');
        if (host.Length == 0) throw new CliException($"--listen {text}: give an address, e.g. 127.0.0.1:{DefaultPort}");
        if (host == "localhost") return new IPEndPoint(IPAddress.Loopback, port);
        if (!IPAddress.TryParse(host, out var address))
        {
            try { address = Dns.GetHostAddresses(host).First(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6); }
            catch (Exception e) when (e is SocketException or InvalidOperationException) { throw new CliException($"--listen {text}: cannot resolve '{host}'"); }
        }
        return new IPEndPoint(address, port);
    }

    private static X509Certificate2? LoadCertificate(string? certificate, string? key)
    {
        if (certificate is null && key is null) return null;
        if (certificate is null || key is null) throw new CliException("TLS needs both --tls-cert and --tls-key");
        foreach (string file in new[] { certificate, key })
            if (Directory.Exists(file)) throw new CliException($"{file} is a folder; --tls-cert and --tls-key name PEM files");
            else if (!File.Exists(file)) throw new CliException($"{file} does not exist");
        try
        {
            // Exported and re-imported: a certificate with an ephemeral key cannot serve TLS on every platform.
            using var pem = X509Certificate2.CreateFromPemFile(certificate, key);
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (Exception e) when (e is CryptographicException or IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot load the TLS certificate {certificate} with key {key}: {GlobalOptions.OneLine(e.Message)}");
        }
    }
}
