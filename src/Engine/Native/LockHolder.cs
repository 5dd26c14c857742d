using System.Globalization;

namespace CowDisk.Engine.Native;

/// <summary>Names the process holding a flock on a file, from /proc/locks, for "in use by …" errors.</summary>
internal static class LockHolder
{
    /// <summary>" (held by pid N: command line)", or "" when it cannot be told.</summary>
    public static string Describe(string path)
    {
        try
        {
            if (HostFile.Inode(path) is not { } inode) return "";
            bool qemuLocks = false;
            foreach (string line in File.ReadLines("/proc/locks"))
            {
                // "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5678 0 EOF" (blocked waiters carry "->" and are skipped)
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 8 || f[1] is not ("FLOCK" or "OFDLCK")) continue;
                var dev = f[5].Split(':');
                if (dev.Length != 3 || !ulong.TryParse(dev[2], NumberStyles.None, CultureInfo.InvariantCulture, out ulong ino) || ino != inode) continue;
                // qemu's lock bytes (100-203), held by open file descriptions (no pid): qemu or a qemu tool.
                if (f[1] == "OFDLCK") { qemuLocks |= long.TryParse(f[6], out long at) && at is >= 100 and <= 203; continue; }
                string pid = f[4];
                if (pid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)) continue;   // our own lock, not the conflict
                string[] args = File.Exists($"/proc/{pid}/cmdline") ? File.ReadAllText($"/proc/{pid}/cmdline").Split('\0') : [];
                // An attach daemon is known by its attachment's name, which detach and list use.
                int name = Array.IndexOf(args, "--name");
                if (args.Contains("attach") && name >= 0 && name + 1 < args.Length)
                    return $" (attached{(args.Contains("--read-only") ? " read-only" : "")} as '{args[name + 1]}', pid {pid}; cowdisk detach {args[name + 1]} to free it)";
                string cmd = string.Join(' ', args).Trim();
                return cmd.Length > 0 ? $" (held by pid {pid}: {cmd})" : $" (held by pid {pid})";
            }
            if (qemuLocks) return " (qemu, qemu-img or qemu-nbd holds qemu's image lock on it)";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return "";
    }
}
