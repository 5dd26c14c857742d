using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using CowDisk.Engine.Frontends.Attach;
using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>
/// A test's folder, attachments, mounts and child processes. Dispose undoes all of them whatever state the
/// test left: kills its children, unmounts, detaches (kill -9 of a daemon that will not go), unmounts the file
/// systems that held images, removes the folder.
/// </summary>
public sealed class AttachScratch : IDisposable
{
    private readonly List<string> _names = [];
    private readonly List<string> _mounts = [];
    private readonly List<string> _hostMounts = [];
    private readonly List<Process> _children = [];
    private int _mountCount;

    private readonly Dictionary<string, string>? _environment;

    public string Folder { get; } = Directory.CreateTempSubdirectory("cowdisk-attach-").FullName;
    public AttachPaths Paths { get; }
    public string Transport { get; }

    /// <param name="privateRunDirectory">
    /// Keep records, locks and logs in a run folder of this test (COWDISK_RUN_DIR), where no other process's
    /// list or attach cleans them up: for tests that watch those files.
    /// </param>
    /// <param name="transport">
    /// How the attachments it makes take FUSE requests (<see cref="AttachTransports"/>): io-uring attaches with
    /// --require-io-uring, so a fallback to /dev/fuse fails the test.
    /// </param>
    public AttachScratch(bool privateRunDirectory = false, string transport = AttachTransports.DevFuse)
    {
        if (AttachFactAttribute.MissingPrerequisite() is { } missing) Assert.Fail($"attach tests need {missing}");
        Transport = transport;
        if (transport == AttachTransports.IoUring && !File.Exists("/sys/module/fuse/parameters/enable_uring"))
            Assert.Fail("the io-uring attach tests need a kernel with FUSE over io_uring (/sys/module/fuse/parameters/enable_uring)");
        Paths = AttachPaths.FromEnvironment();
        if (privateRunDirectory)
        {
            Paths = Paths with { RunDirectory = Path.Combine(Folder, "run") };
            _environment = new() { [AttachPaths.RunDirectoryVariable] = Paths.RunDirectory };
        }
    }

    /// <summary>Runs the cowdisk CLI against this scratch's run folder.</summary>
    public CommandRunner.Result Cow(params string[] arguments) =>
        CommandRunner.Run(CowdiskExecutable.Path, arguments, environment: _environment);

    /// <summary>Starts the cowdisk CLI in the background (killed at the end if still running).</summary>
    public Process StartCow(params string[] arguments)
    {
        var process = CommandRunner.Start(CowdiskExecutable.Path, arguments, _environment);
        _children.Add(process);
        return process;
    }

    public string NewName()
    {
        string name = $"t{Guid.NewGuid():N}"[..12];
        _names.Add(name);
        return name;
    }

    public string CreateImage(string fileName, string size)
    {
        string path = Path.Combine(Folder, fileName);
        CommandRunner.Check(CowdiskExecutable.Path, "create", path, "--size", size);
        return path;
    }

    /// <summary>Attaches and returns the stable link; fails the test if attach fails.</summary>
    public string Attach(string image, string name, params string[] options)
    {
        AttachWithOutput(image, name, options);
        return Paths.LinkPath(name);
    }

    /// <summary>As <see cref="Attach"/>, returning what the command printed (its notices are on stderr).</summary>
    public CommandRunner.Result AttachWithOutput(string image, string name, params string[] options)
    {
        string[] transport = Transport == AttachTransports.IoUring ? ["--require-io-uring"] : [];
        var result = Cow(["attach", image, "--name", name, .. transport, .. options]);
        Assert.True(result.ExitCode == 0, $"attach failed: {result}");
        Assert.Contains(Paths.LinkPath(name), result.Output);
        Assert.Contains("/dev/loop", result.Output);
        Assert.Equal(Transport, Record(name).Transport);
        return result;
    }

    public void Detach(string name)
    {
        var result = Cow("detach", name);
        Assert.True(result.ExitCode == 0, $"detach failed: {result}");
    }

    public string Mount(string device, params string[] options)
    {
        string mountPoint = Path.Combine(Folder, $"mnt{_mountCount++}");
        Directory.CreateDirectory(mountPoint);
        CommandRunner.Check("mount", [.. options, device, mountPoint]);
        _mounts.Add(mountPoint);
        return mountPoint;
    }

    public void Unmount(string mountPoint)
    {
        CommandRunner.Check("umount", mountPoint);
        _mounts.Remove(mountPoint);
    }

    /// <summary>
    /// Loop-mounts a file system image that will hold cowdisk images. Dispose unmounts it after the detaches (an
    /// attached image keeps it busy).
    /// </summary>
    public string MountHost(string fileSystemImage)
    {
        string mountPoint = Path.Combine(Folder, $"host{_mountCount++}");
        Directory.CreateDirectory(mountPoint);
        CommandRunner.Check("mount", "-o", "loop", fileSystemImage, mountPoint);
        _hostMounts.Add(mountPoint);
        return mountPoint;
    }

    /// <summary>Unmounts a file system whose device died: plain umount (it may report write errors), else lazily.</summary>
    public void UnmountDead(string mountPoint)
    {
        var result = CommandRunner.Run("umount", [mountPoint], TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0) CommandRunner.Check("umount", "-l", mountPoint);
        _mounts.Remove(mountPoint);
    }

    public Process StartChild(string program, params string[] arguments)
    {
        var process = CommandRunner.Start(program, arguments);
        _children.Add(process);
        return process;
    }

    public AttachRecord Record(string name) =>
        JsonSerializer.Deserialize(File.ReadAllText(Paths.RecordPath(name)), AttachJsonContext.Default.AttachRecord)!;

    public List<AttachmentStatus> List()
    {
        var result = Cow("list", "--output", "json");
        Assert.True(result.ExitCode == 0, $"list failed: {result}");
        return JsonSerializer.Deserialize(result.Output, AttachJsonContext.Default.ListAttachmentStatus)!;
    }

    /// <summary>mkfs.ext4 on an attached device, mount, write files, unmount: returns their checksums.</summary>
    public SortedDictionary<string, string> FormatAndFill(string link, int count, int seed)
    {
        CommandRunner.Check("mkfs.ext4", "-q", "-F", link);
        string mountPoint = Mount(link);
        WriteFiles(mountPoint, count, seed);
        var files = Checksums(mountPoint);
        Unmount(mountPoint);
        return files;
    }

    /// <summary>Mounts an attached device, reads every file's checksum, unmounts.</summary>
    public SortedDictionary<string, string> MountedChecksums(string link, params string[] mountOptions)
    {
        string mountPoint = Mount(link, mountOptions);
        var files = Checksums(mountPoint);
        Unmount(mountPoint);
        return files;
    }

    /// <summary>Deterministic files of varied sizes under folder; returns their relative paths.</summary>
    public static void WriteFiles(string folder, int count, int seed)
    {
        var random = new Random(seed);
        Directory.CreateDirectory(Path.Combine(folder, "data"));
        for (int i = 0; i < count; i++)
        {
            var bytes = new byte[random.Next(1, 3 << 20)];
            random.NextBytes(bytes);
            File.WriteAllBytes(Path.Combine(folder, "data", $"file{seed}-{i}.bin"), bytes);
        }
    }

    /// <summary>SHA-256 of every file under folder (lost+found excluded), by relative path.</summary>
    public static SortedDictionary<string, string> Checksums(string folder)
    {
        var sums = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (string file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            string relative = Path.GetRelativePath(folder, file);
            if (relative.StartsWith("lost+found", StringComparison.Ordinal)) continue;
            using var stream = File.OpenRead(file);
            sums[relative] = Convert.ToHexString(SHA256.HashData(stream));
        }
        return sums;
    }

    public static string FileChecksum(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    public void Dispose()
    {
        foreach (var child in _children)
        {
            try { if (!child.HasExited) child.Kill(entireProcessTree: true); child.WaitForExit(10_000); }
            catch (InvalidOperationException) { }
            child.Dispose();
        }
        foreach (string mountPoint in _mounts) CommandRunner.Run("umount", ["-l", mountPoint], TimeSpan.FromSeconds(30));
        foreach (string name in _names)
        {
            if (!File.Exists(Paths.RecordPath(name))) continue;
            int? pid = TryReadPid(name);
            var detach = CommandRunner.Run(CowdiskExecutable.Path, ["detach", name, "--timeout", "30"], TimeSpan.FromSeconds(60), _environment);
            if (detach.ExitCode != 0 && pid is { } stuck)
            {
                try { Process.GetProcessById(stuck).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
            }
        }
        if (_names.Count > 0) CommandRunner.Run(CowdiskExecutable.Path, ["list"], TimeSpan.FromSeconds(60), _environment); // cleans stale ones
        foreach (string name in _names) File.Delete(Paths.LogPath(name)); // left by refused or killed daemons
        foreach (string mountPoint in _hostMounts)
        {
            if (CommandRunner.Run("umount", [mountPoint], TimeSpan.FromSeconds(30)).ExitCode != 0)
                CommandRunner.Run("umount", ["-l", mountPoint], TimeSpan.FromSeconds(30));
        }
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
    }

    private int? TryReadPid(string name)
    {
        try { return Record(name).Pid; }
        catch (Exception e) when (e is IOException or JsonException) { return null; }
    }
}
