using System.Text.Json;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Nbd;

/// <summary>`cowdisk serve` driven by the real clients users have: qemu-img, qemu-io, nbdinfo, nbdcopy.</summary>
public sealed class NbdClientToolTests
{
    private static CommandRunner.Result Tool(string program, params string[] arguments) => CommandRunner.Run(program, arguments, TimeSpan.FromSeconds(120));

    private static CommandRunner.Result Ok(string program, params string[] arguments)
    {
        var result = Tool(program, arguments);
        Assert.True(result.ExitCode == 0, $"{program} {string.Join(' ', arguments)}: {result}");
        return result;
    }

    private static string Cowdisk(string runDirectory, params string[] arguments)
    {
        var result = CommandRunner.Run(CowdiskExecutable.Path, arguments, environment: ServeProcess.Environment(runDirectory));
        Assert.True(result.ExitCode == 0, $"cowdisk {string.Join(' ', arguments)}: {result}");
        return result.Output;
    }

    private static string NewImage(TempDir dir, string name, string size)
    {
        string path = dir.File(name);
        Cowdisk(dir.File("run"), "create", path, "--size", size);
        return path;
    }

    [NbdToolFact]
    public void Qemu_io_writes_and_reads_back_and_the_data_outlives_the_server()
    {
        using var dir = new TempDir();
        string image = NewImage(dir, "disk.img", "64M");
        using (var serve = ServeProcess.Start(dir.File("run"), image, "--name", "disk"))
        {
            Assert.StartsWith("nbd+unix:///disk?socket=", serve.Uri);
            var info = Ok("qemu-img", "info", "--output=json", serve.Uri).Output;
            Assert.Equal(64L << 20, JsonDocument.Parse(info).RootElement.GetProperty("virtual-size").GetInt64());
            var io = Ok("qemu-io", "-f", "raw", "-c", "write -P 0xab 1M 1M", "-c", "write -P 0xcd 5000 3000", "-c", "read -P 0xab 1M 1M",
                "-c", "read -P 0xcd 5000 3000", "-c", "read -P 0 0 4096", "-c", "flush", serve.Uri).Output;
            Assert.DoesNotContain("Pattern verification failed", io);
            Assert.Equal(0, serve.Stop());
        }
        Cowdisk(dir.File("run"), "io", image, "read", "--verify", "0xab", "1M", "1M");
        Cowdisk(dir.File("run"), "io", image, "read", "--verify", "0xcd", "5000", "3000");
        Assert.Contains("No errors", Cowdisk(dir.File("run"), "check", image));
    }

    [NbdToolFact]
    public void Kill_9_of_the_server_keeps_every_flushed_and_fua_write()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string image = NewImage(dir, "disk.img", "64M");
        using (var serve = ServeProcess.Start(run, image, "--name", "disk"))
        {
            Ok("qemu-io", "-f", "raw", "-c", "write -P 0x21 0 4M", "-c", "flush", "-c", "write -f -P 0x22 8M 192K", "-c", "write -f -P 0x23 30000000 5000", serve.Uri);
            serve.Kill();
        }
        // Opens with no manual step; every acknowledged flush and FUA write is there.
        Cowdisk(run, "io", image, "read", "--verify", "0x21", "0", "4M");
        Cowdisk(run, "io", image, "read", "--verify", "0x22", "8M", "192K");
        Cowdisk(run, "io", image, "read", "--verify", "0x23", "30000000", "5000");
        var check = CommandRunner.Run(CowdiskExecutable.Path, ["check", image], environment: ServeProcess.Environment(run));
        Assert.True(check.ExitCode is 0 or 3, $"check after kill -9: {check}");   // leaks (3) are allowed after a crash, corruption is not
    }

    [NbdToolFact]
    public void Nbdinfo_map_shows_the_holes_zeros_and_data_that_cowdisk_map_shows()
    {
        using var dir = new TempDir();
        string image = NewImage(dir, "disk.img", "32M");
        Cowdisk(dir.File("run"), "io", image, "write", "-P", "0x11", "0", "1M");
        Cowdisk(dir.File("run"), "io", image, "write", "-P", "0x22", "8M", "192K");
        Cowdisk(dir.File("run"), "io", image, "discard", "8M", "64K");
        var expected = JsonDocument.Parse(Cowdisk(dir.File("run"), "map", image, "--output", "json")).RootElement.EnumerateArray()
            .Select(run => (Start: run.GetProperty("start").GetInt64(), Length: run.GetProperty("length").GetInt64(),
                Data: run.GetProperty("source").GetString() is "own" or "shared" or "base"))
            .ToList();
        using var serve = ServeProcess.Start(dir.File("run"), image, "--read-only");
        var lines = Ok("nbdinfo", "--map", serve.Uri).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var got = lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(f => (Start: long.Parse(f[0]), Length: long.Parse(f[1]), Data: f[2] == "0")).ToList();
        Assert.Equal(Merge(expected), Merge(got));
        // The discarded cluster reads as a hole, inside the hole that runs up to it.
        Assert.Contains(got, run => !run.Data && run.Start <= 8L << 20 && run.Start + run.Length == (8L << 20) + (64 << 10));
        Assert.Equal(0, serve.Stop());
    }

    private static List<(long Start, long Length, bool Data)> Merge(List<(long Start, long Length, bool Data)> runs)
    {
        var merged = new List<(long Start, long Length, bool Data)>();
        foreach (var run in runs)
            if (merged.Count > 0 && merged[^1].Data == run.Data && merged[^1].Start + merged[^1].Length == run.Start)
                merged[^1] = (merged[^1].Start, merged[^1].Length + run.Length, run.Data);
            else merged.Add(run);
        return merged;
    }

    [NbdToolFact]
    public void Nbdcopy_makes_a_sparse_copy_with_the_same_bytes()
    {
        using var dir = new TempDir();
        string image = NewImage(dir, "disk.img", "256M");
        Cowdisk(dir.File("run"), "io", image, "write", "-P", "0x5a", "3M", "2M");
        Cowdisk(dir.File("run"), "io", image, "write", "-P", "0xa5", "200M", "64K");
        string copy = dir.File("copy.raw");
        using (var serve = ServeProcess.Start(dir.File("run"), image, "--read-only"))
        {
            Ok("nbdcopy", serve.Uri, copy);
            Assert.Equal(0, serve.Stop());
        }
        Assert.Equal(256L << 20, new FileInfo(copy).Length);
        var bytes = File.ReadAllBytes(copy);
        Assert.True(bytes.AsSpan(3 << 20, 2 << 20).IndexOfAnyExcept((byte)0x5a) < 0, "the first written range differs");
        Assert.True(bytes.AsSpan(200 << 20, 64 << 10).IndexOfAnyExcept((byte)0xa5) < 0, "the second written range differs");
        Assert.True(bytes.AsSpan(0, 3 << 20).IndexOfAnyExcept((byte)0) < 0 && bytes.AsSpan(5 << 20, (200 - 5) << 20).IndexOfAnyExcept((byte)0) < 0, "holes are not zero");
        long allocated = long.Parse(Ok("stat", "-c", "%b", copy).Output.Trim()) * 512;
        Assert.True(allocated < 16L << 20, $"the copy is not sparse: {allocated} bytes allocated for 2 MiB + 64 KiB of data");
    }

    [NbdToolFact]
    public void Dirty_bitmap_of_a_snapshot_lists_exactly_what_was_written_since()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string image = NewImage(dir, "disk.img", "128M");
        Cowdisk(run, "io", image, "write", "-P", "1", "0", "4M");
        using var serve = ServeProcess.Start(run, image, "--name", "disk");
        // The image is held by the server: the snapshot is taken through it, after every acknowledged write.
        Assert.Contains("through attachment 'disk'", Cowdisk(run, "snapshot", "create", image, "before"));
        Ok("qemu-io", "-f", "raw", "-c", "write -P 2 1M 64K", "-c", "write -P 3 100M 128K", "-c", "write -P 4 100M 4K", serve.Uri);
        var lines = Ok("nbdinfo", "--map=qemu:dirty-bitmap:before", serve.Uri).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var dirty = lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f[2] == "1")
            .Select(f => (long.Parse(f[0]), long.Parse(f[1]))).ToList();
        Assert.Equal([(1L << 20, 64L << 10), (100L << 20, 128L << 10)], dirty);
        // … and agrees with `cowdisk diff` (answered by the server, which holds the image).
        var diff = JsonDocument.Parse(Cowdisk(run, "diff", $"{image}@before", image, "--output", "json")).RootElement.GetProperty("ranges")
            .EnumerateArray().Select(r => (r.GetProperty("start").GetInt64(), r.GetProperty("length").GetInt64())).ToList();
        Assert.Equal(diff, dirty);
        // The snapshot itself, served read-only beside the live disk, still reads as it was.
        using var old = ServeProcess.Start(run, $"{image}@before", "--name", "old");
        var info = Ok("nbdinfo", "--json", old.Uri).Output;
        Assert.True(JsonDocument.Parse(info).RootElement.GetProperty("exports")[0].GetProperty("is_read_only").GetBoolean());
        Ok("qemu-io", "-r", "-f", "raw", "-c", "read -P 1 0 4M", old.Uri);
        Assert.NotEqual(0, Tool("qemu-io", "-f", "raw", "-c", "write -P 9 0 4k", old.Uri).ExitCode);
        Assert.Equal(0, old.Stop());
        Assert.Equal(0, serve.Stop());
    }

    [NbdToolFact]
    public void Several_exports_by_name_from_one_server()
    {
        using var dir = new TempDir();
        string a = NewImage(dir, "alpha.img", "16M"), b = NewImage(dir, "beta.img", "24M");
        using var serve = ServeProcess.Start(dir.File("run"), a, b);
        string socket = serve.Uri[(serve.Uri.IndexOf("socket=", StringComparison.Ordinal) + 7)..];
        var list = Ok("nbdinfo", "--list", "--json", $"nbd+unix://?socket={socket}").Output;
        var names = JsonDocument.Parse(list).RootElement.GetProperty("exports").EnumerateArray().Select(e => e.GetProperty("export-name").GetString()).ToList();
        Assert.Equal(["alpha", "beta"], names);
        Assert.Contains("25165824", Ok("qemu-img", "info", $"nbd+unix:///beta?socket={socket}").Output);
        Ok("qemu-io", "-f", "raw", "-c", "write -P 7 0 64K", $"nbd+unix:///beta?socket={socket}");
        Ok("qemu-io", "-f", "raw", "-c", "read -P 0 0 64K", $"nbd+unix:///alpha?socket={socket}");
        Assert.Equal(0, serve.Stop());
        Cowdisk(dir.File("run"), "io", b, "read", "--verify", "7", "0", "64K");
    }

    [NbdToolFact]
    public void Over_tcp_qemu_img_convert_out_of_the_export_is_identical()
    {
        using var dir = new TempDir();
        string image = NewImage(dir, "disk.img", "48M");
        Cowdisk(dir.File("run"), "io", image, "write", "-P", "0x3c", "7M", "3M");
        using var serve = ServeProcess.Start(dir.File("run"), image, "--read-only", "--name", "disk", "--listen", "127.0.0.1:0");
        Assert.Matches(@"^nbd://127\.0\.0\.1:\d+/disk$", serve.Uri);
        string qcow2 = dir.File("out.qcow2");
        Ok("qemu-img", "convert", "-f", "raw", "-O", "qcow2", serve.Uri, qcow2);
        Ok("qemu-img", "check", qcow2);
        Assert.Contains("identical", Ok("qemu-img", "compare", "-f", "raw", "-F", "qcow2", serve.Uri, qcow2).Output);
        Assert.Equal(0, serve.Stop());
    }

    [NbdToolFact]
    public void Tcp_needs_tls_off_loopback_and_tls_works_with_qemu()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string image = NewImage(dir, "disk.img", "8M");
        var refused = CommandRunner.Run(CowdiskExecutable.Path, ["serve", image, "--listen", "0.0.0.0:0"], environment: ServeProcess.Environment(run));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("--tls-cert", refused.Error);
        Assert.Single(refused.Error.Trim().Split('\n'));

        string tls = Directory.CreateDirectory(dir.File("tls")).FullName, client = Directory.CreateDirectory(dir.File("client")).FullName;
        Ok("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{tls}/ca-key.pem", "-out", $"{tls}/ca-cert.pem", "-days", "2", "-subj", "/CN=test CA");
        Ok("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{tls}/server-key.pem", "-out", $"{tls}/server.csr", "-subj", "/CN=localhost");
        File.WriteAllText($"{tls}/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
        Ok("openssl", "x509", "-req", "-in", $"{tls}/server.csr", "-CA", $"{tls}/ca-cert.pem", "-CAkey", $"{tls}/ca-key.pem", "-CAcreateserial",
            "-out", $"{tls}/server-cert.pem", "-days", "2", "-extfile", $"{tls}/ext.cnf");
        File.Copy($"{tls}/ca-cert.pem", $"{client}/ca-cert.pem");

        using var serve = ServeProcess.Start(run, image, "--name", "disk", "--listen", "127.0.0.1:0", "--tls-cert", $"{tls}/server-cert.pem", "--tls-key", $"{tls}/server-key.pem");
        Assert.StartsWith("nbds://127.0.0.1:", serve.Uri);
        int port = new Uri(serve.Uri.Replace("nbds://", "http://")).Port;
        string[] creds = ["--object", $"tls-creds-x509,id=tls0,endpoint=client,dir={client}"];
        string opts = $"driver=nbd,host=127.0.0.1,port={port},export=disk,tls-creds=tls0";
        Ok("qemu-io", [.. creds, "--image-opts", "-c", "write -P 0x42 0 64K", "-c", "read -P 0x42 0 64K", opts]);
        var plain = Tool("qemu-img", "info", $"nbd://127.0.0.1:{port}/disk");
        Assert.NotEqual(0, plain.ExitCode);
        Assert.Contains("TLS", plain.Error);
        Assert.Equal(0, serve.Stop());
        Cowdisk(run, "io", image, "read", "--verify", "0x42", "0", "64K");
    }

    [NbdToolFact]
    public void Bad_serve_input_is_one_line_and_changes_nothing()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string image = NewImage(dir, "disk.img", "8M");
        foreach (string[] arguments in new[]
        {
            new[] { "serve", dir.File("missing.img") },
            ["serve", $"{image}@nosuch"],
            ["serve", image, "--listen", "127.0.0.1:99999"],
            ["serve", image, "--name", "bad/name"],
            ["serve", image, "--tls-cert", dir.File("nope.pem")],
            ["serve", image, image],
        })
        {
            var result = CommandRunner.Run(CowdiskExecutable.Path, arguments, environment: ServeProcess.Environment(run));
            Assert.True(result.ExitCode != 0, $"{string.Join(' ', arguments)} succeeded: {result}");
            Assert.Single(result.Error.Trim().Split('\n'));
            Assert.StartsWith("cowdisk: ", result.Error);
        }
        Assert.Contains("No errors", Cowdisk(run, "check", image));
    }
}
