using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using CowDisk.Tests.Nbd;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>
/// The installed cowdisk is compiled ahead of time and hands its servers (the attach daemon, serve) to the JIT
/// build in server/ beside it; without one, as in a plain build, they run in cowdisk itself.
/// </summary>
public sealed class ServerBuildTests
{
    private static string ExpectedServer()
    {
        string self = Path.GetFullPath(CowdiskExecutable.Path);
        self = new FileInfo(self).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? self;
        string server = Path.Combine(Path.GetDirectoryName(self)!, "server", "cowdisk");
        return File.Exists(server) ? server : self;
    }

    private static string ExecutableOf(int pid) => new FileInfo($"/proc/{pid}/exe").ResolveLinkTarget(returnFinalTarget: false)!.FullName;

    [Fact]
    public void A_foreground_serve_becomes_the_server_build_in_the_same_process()
    {
        using var dir = new TempDir();
        string run = dir.File("run");
        var created = CommandRunner.Run(CowdiskExecutable.Path, ["create", dir.File("a.img"), "--size", "8M"], environment: ServeProcess.Environment(run));
        Assert.True(created.ExitCode == 0, created.ToString());
        using var serve = ServeProcess.Start(run, dir.File("a.img"), "--socket", dir.File("a.sock"));
        Assert.Equal(ExpectedServer(), ExecutableOf(serve.Pid));
    }

    [AttachFact]
    public void The_attach_daemon_runs_the_server_build()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        scratch.Attach(image, name);
        Assert.Equal(ExpectedServer(), ExecutableOf(scratch.Record(name).Pid));
        scratch.Detach(name);
    }
}
