using CowDisk.Engine.Native;

namespace CowDisk.Engine.Frontends.Attach;

/// <summary>
/// The attach daemon as a process: what a background daemon does to itself (leave the starter's session, then
/// its pipes), and how a user without access to its lock tells whether it still runs.
/// </summary>
public static class DaemonProcess
{
    /// <summary>setsid(2): no controlling terminal, so closing the shell does not send SIGHUP.</summary>
    public static void StartNewSession() => ProcessControl.StartNewSession();

    /// <summary>Points stdin at inputPath and stdout/stderr at outputPath (appending).</summary>
    public static void RedirectStandardStreams(string inputPath, string outputPath) =>
        ProcessControl.RedirectStandardStreams(inputPath, outputPath);

    /// <summary>
    /// Whether pid is a cowdisk daemon (attach or serve) that is still running, for a name whose lock is held: the
    /// lock says the name is taken, this tells its daemon apart from one killed a moment ago (an exiting process has
    /// an empty command line) or a cleanup holding the lock. Any name: `serve IMAGE` takes its name from the file.
    /// </summary>
    public static bool IsRunningDaemon(int pid)
    {
        if (pid <= 0) return false;
        string[] arguments;
        try { arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ProcessControl.IsAlive(pid); }
        return arguments.Contains("attach") || arguments.Contains("serve");
    }

    /// <summary>
    /// Whether pid is an attach daemon of name: its command line holds "attach" and "--name NAME". Pids get
    /// reused, so a live pid alone is not enough; an unreadable command line falls back to the pid being live.
    /// </summary>
    public static bool IsRunning(int pid, string name)
    {
        if (pid <= 0) return false;
        string[] arguments;
        try { arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ProcessControl.IsAlive(pid); }
        if (!arguments.Contains("attach") && !arguments.Contains("serve")) return false;
        for (int i = 0; i < arguments.Length; i++)
        {
            if (arguments[i] == "--name" && i + 1 < arguments.Length && arguments[i + 1] == name) return true;
            if (arguments[i] == $"--name={name}" || arguments[i] == $"--name:{name}") return true;
        }
        return false;
    }
}
