using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using CowDisk.Engine;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Cli.Commands;

/// <summary>
/// qemu-io-like scripting of one image: write, read (optionally verifying a pattern), discard, zero.
/// Offsets and lengths take bytes or K/M/G suffixes; I/O need not be aligned.
/// </summary>
public static class IoCommand
{
    private const int ChunkBytes = 1 << 20;

    private static readonly string[] Ops = { "write", "read", "verify", "discard", "zero" };

    private sealed record OpArgs(IBlockDevice Image, long Offset, long Length, byte? Pattern, WriteSource? Source);

    public static Command Build()
    {
        var image = new Argument<string>("image") { Description = "Image to operate on" };
        var op = new Argument<string>("op") { Description = "write | read | verify | discard | zero" };
        op.AcceptOnlyFromAmong(Ops);
        var offset = new Argument<string>("offset") { Description = "Byte offset (bytes or K/M/G suffix; need not be aligned)" };
        var length = new Argument<string>("length") { Description = "Byte count (bytes or K/M/G suffix)" };
        var pattern = new Option<string?>("--pattern", "-P") { Description = "write: the byte to write (default 0xcd); read/verify: the byte every read byte must equal" };
        var verify = new Option<string?>("--verify") { Description = "read: the byte every read byte must equal, e.g. 0xab" };
        var from = new Option<string?>("--from") { Description = "write: this file's first LENGTH bytes instead of a pattern" };
        var cmd = new Command("io", "Write, read, verify, discard or zero a byte range of an image (like qemu-io)")
            { image, op, offset, length, pattern, verify, from };
        cmd.SetAction(r => GlobalOptions.Run(() =>
        {
            var settings = GlobalOptions.Engine(r);
            string what = r.GetValue(op)!;
            long off = ByteSize.Parse(r.GetValue(offset)!, "offset");
            long len = ByteSize.Parse(r.GetValue(length)!, "length");
            string? patternText = r.GetValue(verify) ?? r.GetValue(pattern);
            if (r.GetValue(verify) is not null && what != "read") throw new CliException("--verify goes with read");
            if (r.GetValue(from) is not null && (what != "write" || patternText is not null))
                throw new CliException("--from goes with write, instead of --pattern");
            if (what == "verify" && patternText is null) throw new CliException("verify needs --pattern");
            byte? p = patternText is not null ? ParsePattern(patternText) : what == "write" ? (byte)0xcd : null;
            bool readOnly = what is "read" or "verify";
            // Checked before the image is opened: a short --from file writes nothing.
            using var source = r.GetValue(from) is { } file ? WriteSource.Open(file, len) : null;
            var named = ImageRef.Parse(r.GetValue(image)!);
            if (named.Snapshot is not null && !readOnly)
                throw new CliException($"{named} is a snapshot, which is read-only ({what} needs a writable image)");
            ImagePath.RequireNotFolder(named.Path);
            // A snapshot of an image a running attachment writes is read through that attachment.
            if (!readOnly && File.Exists(named.Path) && BaseImage.Probe(named.Path) is var format && format != BaseImage.CowDiskFormat)
                throw new CliException($"{named.Path} is a {format} image, which cowdisk only reads ({what} needs a cowdisk image: make an overlay with `cowdisk create top.img --backing {Path.GetFileName(named.Path)}`)");
            // Reads open any format; a snapshot of an image a running attachment writes is read through that attachment.
            using IBlockDevice img = readOnly ? BaseImage.OpenForReading(named, settings)
                : CowImage.Open(named.Path, new ImageOpenOptions { ReadOnly = false, Settings = settings });
            if (off > img.Size || len > img.Size - off)
                throw new CliException($"range {off}+{len} is outside the image ({img.Size} bytes)");
            var a = new OpArgs(img, off, len, p, source);
            return what switch
            {
                "write" => Write(a),
                "discard" => RangeOp(a, "discarded", a.Image.Discard),
                "zero" => RangeOp(a, "zeroed", a.Image.WriteZeroes),
                _ => Read(a),
            };
        }));
        return cmd;
    }

    public static byte ParsePattern(string text)
    {
        var t = text.Trim();
        bool ok = t.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? byte.TryParse(t[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte v)
            : byte.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out v);
        if (!ok) throw new CliException($"invalid pattern '{text}' (a byte: 0x00..0xff or 0..255)");
        return v;
    }

    private static int Write(OpArgs a)
    {
        var sw = Stopwatch.StartNew();
        var buffer = new byte[(int)Math.Min(ChunkBytes, Math.Max(1, a.Length))];
        if (a.Source is null) Array.Fill(buffer, a.Pattern!.Value);
        for (long done = 0; done < a.Length;)
        {
            int n = (int)Math.Min(buffer.Length, a.Length - done);
            a.Source?.ReadExactly(buffer.AsSpan(0, n), written: done, a.Offset);
            a.Image.Write(a.Offset + done, buffer.AsSpan(0, n));
            done += n;
        }
        a.Image.Flush();
        Report("wrote", a, sw);
        return 0;
    }

    private static int Read(OpArgs a)
    {
        var sw = Stopwatch.StartNew();
        var buffer = new byte[(int)Math.Min(ChunkBytes, Math.Max(1, a.Length))];
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long done = 0; done < a.Length;)
        {
            int n = (int)Math.Min(buffer.Length, a.Length - done);
            var span = buffer.AsSpan(0, n);
            a.Image.Read(a.Offset + done, span);
            if (a.Pattern is { } p)
            {
                int bad = span.IndexOfAnyExcept(p);
                if (bad >= 0)
                {
                    Console.Error.WriteLine($"cowdisk: verify failed at offset {a.Offset + done + bad}: expected 0x{p:x2}, found 0x{span[bad]:x2}");
                    return 1;
                }
            }
            hash.AppendData(span);
            done += n;
        }
        Report("read", a, sw);
        Console.WriteLine($"sha256: {Convert.ToHexStringLower(hash.GetHashAndReset())}");
        return 0;
    }

    /// <summary>discard and zero: one call on the device, then a flush.</summary>
    private static int RangeOp(OpArgs a, string verb, Action<long, long> op)
    {
        var sw = Stopwatch.StartNew();
        op(a.Offset, a.Length);
        a.Image.Flush();
        Report(verb, a, sw);
        return 0;
    }

    private static void Report(string verb, OpArgs a, Stopwatch sw)
    {
        double s = Math.Max(sw.Elapsed.TotalSeconds, 1e-9);
        Console.WriteLine($"{verb} {a.Length}/{a.Length} bytes at offset {a.Offset}");
        Console.WriteLine($"{ByteSize.Format(a.Length)}; {s:0.######} sec ({ByteSize.Format((long)(a.Length / s))}/sec)");
    }
}
