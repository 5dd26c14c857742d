using System.CommandLine;
using CowDisk.Cli.Attach;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Images;

namespace CowDisk.Cli;

/// <summary>cowdisk attach / list / detach: an image as a real block device through FUSE and a loop device.</summary>
public static class AttachCommands
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(BuildAttach());
        root.Subcommands.Add(BuildList());
        root.Subcommands.Add(BuildDetach());
    }

    private static Command BuildAttach()
    {
        var image = new Argument<string>("image") { Description = "Image to attach" };
        var name = new Option<string>("--name") { Description = "Attachment name: /dev/cowdisk/NAME, list, detach", Required = true };
        var overlay = new Option<bool>("--overlay") { Description = "Write to a new overlay beside the image; the image stays unchanged" };
        var readOnly = new Option<bool>("--read-only") { Description = "Serve the image read-only; the loop device is read-only" };
        var foreground = new Option<bool>("--foreground") { Description = "Stay in the foreground until SIGTERM/SIGINT (for systemd and debugging)" };
        var nbd = new Option<string?>("--nbd") { Description = "Also serve the disk over NBD: 'unix' (/run/cowdisk/NAME.sock) or a loopback HOST:PORT" };
        var ioUring = new Option<bool>("--io-uring") { Description = "Serve FUSE over io_uring (turns the kernel's switch on if needed; falls back to /dev/fuse with a notice). Setting: Attach:IoUring" };
        var requireIoUring = new Option<bool>("--require-io-uring") { Description = "Like --io-uring, but fail instead of falling back" };
        var fuseThreads = new Option<int?>("--fuse-threads") { Description = "FUSE worker threads (each on its own clone of /dev/fuse; with --io-uring the pool for requests that may wait on the disk). Default 8, or 32 with Engine:DirectIo" };
        var cmd = new Command("attach", "Attach an image as a block device (/dev/loopN and /dev/cowdisk/NAME)")
        {
            image, name, overlay, readOnly, foreground, fuseThreads, nbd, ioUring, requireIoUring,
        };
        cmd.SetAction(r => GlobalOptions.Run(() => Guarded(() =>
        {
            if (r.GetValue(foreground)) ServerBuild.HandOver();   // before anything is read (a --config pipe reads once)
            var engine = GlobalOptions.Engine(r);
            // With O_DIRECT every READ and WRITE waits on the disk in its thread: fewer threads than fio's or a file
            // system's queue depth would cap the I/O in flight (4 KiB random reads QD32 over io_uring: 57k IOPS with
            // 32 threads, 40k with 8). With the page cache, more threads only add wake-ups.
            int threads = r.GetValue(fuseThreads) ?? (engine.DirectIo ? DirectIoFuseThreads : DefaultFuseThreads);
            if (threads is < 1 or > 256) throw new CliException($"--fuse-threads must be 1..256, not {threads}");
            bool ioUringSetting = GlobalOptions.AttachIoUring(r);   // read (and its section checked) whether or not --io-uring is given
            var named = ImageRef.Parse(r.GetValue(image)!);
            var request = new AttachRequest
            {
                Image = Path.GetFullPath(named.Path), Snapshot = named.Snapshot, Name = r.GetValue(name)!, Overlay = r.GetValue(overlay),
                ReadOnly = r.GetValue(readOnly) || (named.Snapshot is not null && !r.GetValue(overlay)), FuseThreads = threads, Engine = engine,
                NbdUnix = r.GetValue(nbd) == "unix",
                IoUring = r.GetValue(ioUring) || ioUringSetting, RequireIoUring = r.GetValue(requireIoUring),
                NbdTcp = r.GetValue(nbd) is { } address and not "unix" ? Commands.ServeCommand.ParseListen(address) : null,
            };
            if (request.NbdTcp is { } tcp && !System.Net.IPAddress.IsLoopback(tcp.Address))
                throw new CliException($"attach --nbd listens on loopback or a Unix socket only, not {tcp} (serve a snapshot or a detached image with `cowdisk serve` for TLS)");
            if (r.GetValue(foreground)) return AttachDaemon.Run(request);

            // Fail fast here on what the daemon would refuse anyway; it re-checks everything itself.
            AttachPrerequisites.Check();
            AttachName.Validate(request.Name);
            if (request.Overlay && request.ReadOnly) throw new CliException("--overlay and --read-only exclude each other");
            ImagePath.RequireNotFolder(request.Image);
            if (!File.Exists(ImageFiles.For(request.Image).DataPath)) throw new CliException($"image {request.Image} does not exist");
            var registry = new AttachRegistry(AttachPaths.FromEnvironment());
            if (registry.IsTaken(request.Name)) throw new CliException($"name '{request.Name}' is already attached");
            registry.EnsureDirectories();
            return AttachLauncher.Launch(DaemonArguments(r, request), registry, request.Name);
        })));
        return cmd;
    }

    private const int DefaultFuseThreads = 8, DirectIoFuseThreads = 32;

    private static List<string> DaemonArguments(ParseResult r, AttachRequest request)
    {
        string image = request.Snapshot is null ? request.Image : $"{request.Image}@{request.Snapshot}";
        var arguments = new List<string> { "attach", image, "--name", request.Name, "--foreground",
            "--fuse-threads", request.FuseThreads.ToString() };
        if (request.Overlay) arguments.Add("--overlay");
        if (request.IoUring) arguments.Add("--io-uring");
        if (request.RequireIoUring) arguments.Add("--require-io-uring");
        if (request.NbdUnix) arguments.AddRange(["--nbd", "unix"]);
        if (request.NbdTcp is { } tcp) arguments.AddRange(["--nbd", tcp.ToString()]);
        if (request.ReadOnly) arguments.Add("--read-only");
        if (r.GetValue(GlobalOptions.Config) is { } config) arguments.AddRange(["--config", Path.GetFullPath(config)]);
        foreach (string set in r.GetValue(GlobalOptions.Set) ?? []) arguments.AddRange(["--set", set]);
        return arguments;
    }

    private static Command BuildList()
    {
        var output = new Option<string>("--output") { Description = "human or json", DefaultValueFactory = _ => "human" };
        output.AcceptOnlyFromAmong("human", "json");
        var cmd = new Command("list", "List attachments; cleans up after daemons that died") { output };
        cmd.SetAction(r => GlobalOptions.Run(() => Guarded(() =>
        {
            var statuses = new AttachRegistry(AttachPaths.FromEnvironment()).List();
            if (r.GetValue(output) == "json")
                CliJson.Print(statuses);   // one JSON look for every command
            else WriteTable(statuses);
            return 0;
        })));
        return cmd;
    }

    private static void WriteTable(List<AttachmentStatus> statuses)
    {
        var rows = new List<string[]> { new[] { "NAME", "IMAGE", "DEVICE / NBD", "PID", "RO", "STATE" } };
        foreach (var s in statuses)
            rows.Add([s.Name, (s.Overlay is null ? "" : $"{s.Overlay} (over ") + s.Image + (s.Snapshot is null ? "" : $"@{s.Snapshot}") + (s.Overlay is null ? "" : ")"),
                string.Join(" ", new[] { s.Device }.Concat(s.Nbd ?? []).OfType<string>().DefaultIfEmpty("-")),
                s.Pid.ToString(), s.ReadOnly ? "yes" : "no", s.Error is null ? s.State : $"{s.State}: {s.Error}"]);
        int[] widths = Enumerable.Range(0, rows[0].Length).Select(c => rows.Max(row => row[c].Length)).ToArray();
        foreach (var row in rows)
            Console.WriteLine(string.Join("  ", row.Select((cell, c) => c == row.Length - 1 ? cell : cell.PadRight(widths[c]))));
    }

    private static Command BuildDetach()
    {
        var name = new Argument<string>("name") { Description = "Attachment to detach" };
        var timeout = new Option<int>("--timeout") { Description = "Seconds to wait for the daemon to flush and exit", DefaultValueFactory = _ => 120 };
        var cmd = new Command("detach", "Flush, release the loop device, unmount and stop the daemon") { name, timeout };
        cmd.SetAction(r => GlobalOptions.Run(() => Guarded(() =>
        {
            AttachPrerequisites.CheckRoot("detach");
            if (r.GetValue(timeout) < 1) throw new CliException($"--timeout must be at least 1 second, not {r.GetValue(timeout)}");
            string note = new AttachRegistry(AttachPaths.FromEnvironment()).Detach(r.GetValue(name)!, TimeSpan.FromSeconds(r.GetValue(timeout)));
            Console.WriteLine(note);
            return 0;
        })));
        return cmd;
    }

    /// <summary>Attach errors are user-facing one-liners, like the CLI's own.</summary>
    private static int Guarded(Func<int> body)
    {
        try { return body(); }
        catch (AttachException error) { throw new CliException(error.Message); }
    }
}
