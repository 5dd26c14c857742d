using System.Net;
using System.Net.Sockets;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Nbd;

/// <summary>Where `cowdisk serve` listens, and that a second server never takes or breaks the first one's place.</summary>
public sealed class ServeListenTests
{
    private static CommandRunner.Result Cow(string run, params string[] arguments) =>
        CommandRunner.Run(CowdiskExecutable.Path, arguments, environment: ServeProcess.Environment(run));

    private static string Image(TempDir dir, string name)
    {
        var created = Cow(dir.File("run"), "create", dir.File(name), "--size", "8M");
        Assert.True(created.ExitCode == 0, created.ToString());
        return dir.File(name);
    }

    [Fact]
    public void A_second_server_on_the_same_tcp_port_is_refused()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        using var first = ServeProcess.Start(run, Image(dir, "a.img"), "--listen", "127.0.0.1:0");
        int port = new Uri(first.Uri).Port;
        var second = Cow(run, "serve", Image(dir, "b.img"), "--listen", $"127.0.0.1:{port}");
        Assert.Equal(1, second.ExitCode);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", second.Error);
        Assert.Single(second.Error.Trim().Split('\n'));
        Assert.Equal(0, first.Stop());
    }

    [Fact]
    public void A_server_refused_a_socket_in_use_leaves_that_socket_alone()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string socket = dir.File("shared.sock");
        using var first = ServeProcess.Start(run, Image(dir, "a.img"), "--socket", socket);
        var second = Cow(run, "serve", Image(dir, "b.img"), "--socket", socket);
        Assert.Equal(1, second.ExitCode);
        Assert.Contains("in use", second.Error);
        using (var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            probe.Connect(new UnixDomainSocketEndPoint(socket));   // the first server is still reachable
        Assert.Equal(0, first.Stop());
        Assert.False(File.Exists(socket), "the socket outlived its server");
    }

    [Fact]
    public void Socket_errors_are_one_line_and_tls_on_a_unix_socket_says_nbds()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        string image = Image(dir, "a.img");
        var noFolder = Cow(run, "serve", image, "--socket", dir.File("no/such/x.sock"));
        Assert.Equal(1, noFolder.ExitCode);
        Assert.Contains("folder does not exist", noFolder.Error);
        var tooLong = Cow(run, "serve", image, "--socket", dir.File(new string('s', 120) + ".sock"));
        Assert.Equal(1, tooLong.ExitCode);
        Assert.Contains("too long", tooLong.Error);
        var bogus = Cow(run, "serve", image, "--bogus");
        Assert.Equal(1, bogus.ExitCode);
        Assert.Contains("unknown option --bogus", bogus.Error);

        string tls = Directory.CreateDirectory(dir.File("tls")).FullName;
        var key = CommandRunner.Run("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", $"{tls}/key.pem", "-out", $"{tls}/cert.pem", "-days", "1", "-subj", "/CN=localhost"]);
        Assert.True(key.ExitCode == 0, key.ToString());
        using var serve = ServeProcess.Start(run, image, "--name", "a", "--tls-cert", $"{tls}/cert.pem", "--tls-key", $"{tls}/key.pem");
        Assert.StartsWith("nbds+unix:///a?socket=", serve.Uri);
        Assert.Equal(0, serve.Stop());
    }

    [Fact]
    public void Every_export_of_a_server_is_listed_with_its_uri()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        using var serve = ServeProcess.Start(run, Image(dir, "alpha.img"), Image(dir, "beta.img"), "--listen", "127.0.0.1:0");
        var list = Cow(run, "list", "--output", "json");
        Assert.True(list.ExitCode == 0, list.ToString());
        int port = new Uri(serve.Uri).Port;
        Assert.Contains($"nbd://127.0.0.1:{port}/alpha", list.Output);
        Assert.Contains($"nbd://127.0.0.1:{port}/beta", list.Output);
        Assert.Equal(0, serve.Stop());
    }
}
