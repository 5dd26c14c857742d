using System.CommandLine;
using System.Diagnostics;
using CowDisk.Engine.Convert;
using CowDisk.Engine.Images;

namespace CowDisk.Cli.Commands;

/// <summary>cowdisk convert SOURCE OUTPUT --to cowdisk|qcow2|raw: a new image with the same bytes, as sparse as it can be.</summary>
public static class ConvertCommand
{
    public static Command Build()
    {
        var source = new Argument<string>("source") { Description = "Image to read (cowdisk, qcow2 or raw; IMAGE@SNAPSHOT for a snapshot)" };
        var output = new Argument<string>("output") { Description = "New image to write" };
        var to = new Option<string>("--to", "-O") { Description = "Output format: cowdisk, qcow2 or raw", Required = true };
        to.AcceptOnlyFromAmong("cowdisk", "qcow2", "raw");
        var progress = new Option<bool>("--progress", "-p") { Description = "Show progress (bytes, rate, time left) on a terminal" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "Print nothing on success (piped output is quiet anyway)" };
        var compress = new Option<bool>("--compress", "-c") { Description = "qcow2 output: compress clusters (deflate)" };
        var withSnapshots = new Option<bool>("--with-snapshots") { Description = "qcow2 to cowdisk: internal snapshots become cowdisk snapshots" };
        var clusterSize = new Option<string?>("--cluster-size") { Description = "Output cluster size (cowdisk 4K..2M, qcow2 512..2M)" };
        var sourceFormat = new Option<string?>("--source-format", "-f") { Description = "Read the source as this format (only 'raw' overrides the probe)" };
        sourceFormat.AcceptOnlyFromAmong("raw", "cowdisk", "qcow2");
        var force = new Option<bool>("--force") { Description = "Replace an existing output (renamed over it once complete)" };
        var cmd = new Command("convert", "Copy an image into a new image of another format (holes and zeros stay unallocated)")
        {
            source, output, to, progress, quiet, compress, withSnapshots, clusterSize, sourceFormat, force,
        };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var named = ImageRef.Parse(r.GetValue(source)!);
            var format = r.GetValue(to) switch { "qcow2" => ConvertFormat.Qcow2, "raw" => ConvertFormat.Raw, _ => ConvertFormat.CowDisk };
            if (r.GetValue(compress) && format != ConvertFormat.Qcow2) throw new CliException("--compress applies to qcow2 output only");
            if (r.GetValue(withSnapshots) && format != ConvertFormat.CowDisk) throw new CliException("--with-snapshots applies to cowdisk output only");
            int? cluster = r.GetValue(clusterSize) is { } text ? checked((int)ByteSize.Parse(text)) : null;
            if (cluster is { } c && format == ConvertFormat.Raw) throw new CliException("--cluster-size does not apply to raw output");
            if (cluster is { } cs && (cs & (cs - 1)) != 0) throw new CliException($"--cluster-size must be a power of two, not {cs}");
            string? declared = r.GetValue(sourceFormat);
            if (declared is not null and not "raw")
            {
                string probed = BaseImage.Probe(Path.GetFullPath(named.Path));
                if (probed != declared) throw new CliException($"{named.Path} is a {probed} image, not {declared}");
            }
            bool quietRun = r.GetValue(quiet);
            using var bar = r.GetValue(progress) && !quietRun && !Console.IsErrorRedirected ? new ProgressBar() : null;
            // Ctrl+C, SIGTERM or SIGHUP stop the copy; the staging files go and the destination stays as it was.
            using var interrupted = new CancellationTokenSource();
            void Stop(System.Runtime.InteropServices.PosixSignalContext context) { context.Cancel = true; interrupted.Cancel(); }
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, Stop);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, Stop);
            using var sighup = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGHUP, Stop);
            ConvertResult result;
            try
            {
                result = ImageConverter.Convert(named, r.GetValue(output)!, new ConvertOptions
                {
                    Target = format, ClusterSize = cluster, Compress = r.GetValue(compress), WithSnapshots = r.GetValue(withSnapshots),
                    Force = r.GetValue(force), SourceIsRaw = declared == "raw", Settings = GlobalOptions.Engine(r),
                    Progress = bar is null ? null : bar.Report, Cancel = interrupted.Token,
                });
            }
            catch (OperationCanceledException)
            {
                bar?.Finish();
                Console.Error.WriteLine($"cowdisk: interrupted; {r.GetValue(output)} was not written (nothing left behind)");
                return 130;
            }
            bar?.Finish();
            // Like qemu-img convert, silent in scripts: the summary is for a person at a terminal.
            if (!quietRun && !Console.IsOutputRedirected)
                Console.WriteLine($"converted {named} ({result.SourceFormat}, {ByteSize.Format(result.VirtualSize)}) to {result.Destination} ({r.GetValue(to)}): " +
                                  $"{ByteSize.Format(result.DataBytes)} of data read, {ByteSize.Format(result.WrittenBytes)} written" +
                                  (result.Snapshots > 0 ? $", {result.Snapshots} snapshots" : ""));
            return 0;
        }));
        return cmd;
    }

    /// <summary>One line on stderr, redrawn at most 10 times a second: percent, bytes, rate, time left.</summary>
    private sealed class ProgressBar : IDisposable
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private long _lastDraw = -1000;
        private bool _drawn;

        public void Report(long done, long total)
        {
            long now = _clock.ElapsedMilliseconds;
            if (now - _lastDraw < 100 && done < total) return;
            _lastDraw = now;
            double seconds = Math.Max(0.001, now / 1000.0), rate = done / seconds;
            double fraction = total == 0 ? 1 : (double)done / total;
            int width = 30, filled = (int)(fraction * width);
            string left = rate > 0 && done < total ? TimeSpan.FromSeconds((total - done) / rate).ToString(@"hh\:mm\:ss") : "00:00:00";
            Console.Error.Write($"\r[{new string('#', filled)}{new string('.', width - filled)}] {fraction * 100,5:0.0}%  " +
                                $"{ByteSize.Format(done)} / {ByteSize.Format(total)}  {ByteSize.Format((long)rate)}/s  {left} left ");
            _drawn = true;
        }

        public void Finish()
        {
            if (_drawn) Console.Error.WriteLine();
            _drawn = false;
        }

        public void Dispose() => Finish();
    }
}
