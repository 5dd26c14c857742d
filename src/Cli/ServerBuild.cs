using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CowDisk.Cli;

/// <summary>
/// The build that serves. The installed `cowdisk` is compiled ahead of time (Native AOT): it starts in ~10 ms and
/// reads ~13 MB from disk, where a JIT build needs 80-150 ms and ~77 MB, which a short command such as `convert`
/// pays every time. But a long-running server is faster jitted: tiered PGO inlines and devirtualises the hot path
/// (4 KiB I/O through `attach` 6-8 % faster than the AOT build). So the install puts a JIT build (ReadyToRun) in
/// `server/` beside it, and the attach and serve daemons run that one. Without it everything runs in this build.
/// </summary>
internal static partial class ServerBuild
{
    /// <summary>The JIT build's executable, or null when this is it (or there is none).</summary>
    public static string? Path { get; } = Locate();

    private static string? Locate()
    {
        if (RuntimeFeature.IsDynamicCodeSupported) return null;   // jitted already
        if (Environment.ProcessPath is not { } self) return null;
        string resolved = new FileInfo(self).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? self;
        string candidate = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(resolved)!, "server", "cowdisk");
        try
        {
            // Only a complete install: scripts/install.sh moves the whole folder into place at the end.
            return (File.GetUnixFileMode(candidate) & UnixFileMode.UserExecute) != 0 ? candidate : null;
        }
        catch (IOException) { return null; }   // none
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Becomes the server build (same process id, arguments, environment and open descriptors) before a foreground
    /// server opens anything. Returns only when there is none or the exec failed; this build then serves.
    /// </summary>
    public static void HandOver()
    {
        if (Path is not { } server) return;
        string?[] argv = [server, .. Environment.GetCommandLineArgs().Skip(1), null];
        execv(server, argv);
        Console.Error.WriteLine($"cowdisk: cannot run the server build {server} ({Marshal.GetLastPInvokeErrorMessage()}); serving from this one");
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int execv(string path, string?[] argv);
}
