namespace CowDisk.Cli.Attach;

/// <summary>Timestamped lines from the daemon's threads to one writer (the log file, or stderr in the foreground).</summary>
internal sealed class DaemonLog(TextWriter writer)
{
    private readonly Lock _gate = new();

    public void Write(string message)
    {
        lock (_gate)
        {
            writer.WriteLine($"{DateTimeOffset.Now:yyyy-MM-ddTHH:mm:ss.fffzzz} {message}");
            writer.Flush();
        }
    }

    public static DaemonLog AppendingTo(string path) =>
        new(new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete)));
}
