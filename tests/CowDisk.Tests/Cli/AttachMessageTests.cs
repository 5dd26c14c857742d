using System.Text.Json;
using CowDisk.Engine.Frontends.Attach;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using Xunit;

namespace CowDisk.Tests.Cli;

/// <summary>attach and list as an admin meets them: plain refusals, no logs left behind, list for everyone.</summary>
[Collection(AttachCollection.Name)]
public sealed class AttachMessageTests
{
    [AttachFact]
    public void A_refused_attach_says_why_once_and_leaves_no_log()
    {
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        using (CowImage.Open(image, new ImageOpenOptions()))   // another writer holds the image
        {
            var refused = scratch.Cow("attach", image, "--name", name);
            CliAssert.OneLineError(refused, "it is in use");
            Assert.DoesNotContain("cannot open", refused.Error);   // was "cannot open X: cannot open X: …"
        }
        Assert.False(File.Exists(scratch.Paths.LogPath(name)), "the log of a failed attach was kept");

        string raw = Path.Combine(scratch.Folder, "disk.raw");
        File.WriteAllBytes(raw, new byte[1 << 20]);
        CliAssert.OneLineError(scratch.Cow("attach", raw, "--name", name), "is a raw image");
        Assert.Empty(Directory.GetFiles(scratch.Paths.RunDirectory, "*.log"));

        string folder = Directory.CreateDirectory(Path.Combine(scratch.Folder, "folder.img")).FullName;
        CliAssert.OneLineError(scratch.Cow("attach", folder, "--name", name), "is a folder, not an image");
        string dangling = Path.Combine(scratch.Folder, "gone.img");
        File.CreateSymbolicLink(dangling, Path.Combine(scratch.Folder, "nowhere.img"));
        CliAssert.OneLineError(scratch.Cow("attach", dangling, "--name", name), $"image {dangling} does not exist");
        var foreground = scratch.Cow("attach", dangling, "--name", name, "--foreground");   // logs to stderr too
        Assert.NotEqual(0, foreground.ExitCode);
        Assert.EndsWith($"cowdisk: image {dangling} does not exist", foreground.Error.Trim());
    }

    [AttachFact]
    public void List_works_for_a_user_who_is_not_root()
    {
        // The build must be reachable by nobody (a checkout's build under /root is not: nothing to test then, except
        // in CI, where scripts/test.sh installs it for everyone).
        string program = Path.GetFullPath(CowdiskExecutable.Path);
        program = new FileInfo(program).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? program;
        string assembly = Path.ChangeExtension(program, ".dll");   // a jitted build's code; a Native AOT build has none
        bool reachable = CommandRunner.Run("setpriv", [.. AsNobody, "test", "-x", program]).ExitCode == 0 &&
                         (!File.Exists(assembly) || CommandRunner.Run("setpriv", [.. AsNobody, "test", "-r", assembly]).ExitCode == 0);
        if (!reachable)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") != "true", $"{program} is not reachable by uid 65534 (nobody)");
            return;
        }
        using var scratch = new AttachScratch(privateRunDirectory: true);
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        scratch.Attach(image, name);

        File.SetUnixFileMode(scratch.Folder, (UnixFileMode)0b111_101_101);   // 0755, as /run is

        var asNobody = ListAsNobody(scratch);
        Assert.True(asNobody.ExitCode == 0, asNobody.ToString());
        var status = Assert.Single(JsonSerializer.Deserialize(asNobody.Output, AttachJsonContext.Default.ListAttachmentStatus)!);
        Assert.Equal(name, status.Name);
        Assert.Equal(AttachState.Running, status.State);

        File.SetUnixFileMode(scratch.Paths.RunDirectory, (UnixFileMode)0b111_000_000);   // 0700: nothing to read
        CliAssert.OneLineError(ListAsNobody(scratch), "attachments are root's");
        scratch.Detach(name);
    }

    /// <summary>setpriv, not runuser: the uid of nobody whether or not the machine has a passwd entry for it.</summary>
    private static readonly string[] AsNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];

    private static CommandRunner.Result ListAsNobody(AttachScratch scratch) =>
        CommandRunner.Run("setpriv", [.. AsNobody, "env", "HOME=/tmp",
            $"{AttachPaths.RunDirectoryVariable}={scratch.Paths.RunDirectory}", CowdiskExecutable.Path, "list", "--output", "json"]);
}
