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
    /// Whether pid is an attach or serve daemon of name: its command line holds "attach" or "serve" and
    /// "--name NAME". Pids get reused, so a live pid alone is not enough; an unreadable command line falls back to
    /// the pid being live. Without a name, any daemon: for a name whose lock is held, this tells its daemon apart
    /// from one killed a moment ago (an exiting process has an empty command line) or a cleanup holding the lock
    /// (`serve IMAGE` takes its name from the file, with no --name to match).
    /// </summary>
    public static bool IsRunning(int pid, string? name)
    {
        if (pid <= 0) return false;
        string[] arguments;
        try { arguments = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException) { return false; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ProcessControl.IsAlive(pid); }
        if (!arguments.Contains("attach") && !arguments.Contains("serve")) return false;
        if (name is null) return true;
        for (int i = 0; i < arguments.Length; i++)
        {
            if (arguments[i] == "--name" && i + 1 < arguments.Length && arguments[i + 1] == name) return true;
            if (arguments[i] == $"--name={name}" || arguments[i] == $"--name:{name}") return true;
        }
        return false;
    }

    /// <summary>
    /// Whether pid is a process on its way out: it still exists, but its memory is gone (the kernel gives an empty
    /// command line from there on). A daemon killed a moment ago is in this state until its last thread has closed
    /// its files, and with them its lock.
    /// </summary>
    public static bool IsExiting(int pid)
    {
        if (pid <= 0) return false;
        try { return File.ReadAllText($"/proc/{pid}/cmdline").Length == 0; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }
}
