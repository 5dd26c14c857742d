using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Convert;

/// <summary>
/// Has the disk read the start of the source file while the process opens the source's metadata and creates the
/// output (50-100 ms of CPU work during which the disk would be idle), so the first of the data is in the page
/// cache when the copy starts. An image written front to back keeps its data in disk order, and a raw file is the
/// disk. Only the file's allocated ranges, by posix_fadvise WILLNEED: the kernel queues exactly those reads and
/// nothing is copied to us. (Plain reads, as before, set off kernel readahead, which also read the holes between
/// the ranges of a sparse file and zero-filled page cache for them: up to a second of kernel time for a 2 GiB
/// raw file that is half holes.) Only a hint: no byte of the output comes from it. Its descriptor is its own,
/// read-only and unlocked; the image's locks are open-file-description locks (flock, OFD), which closing another
/// descriptor leaves alone.
/// </summary>
internal sealed class SourcePrefetch : IDisposable
{
    /// <summary>At most this much: more than the start-up lasts, little page cache for a big disk.</summary>
    private const long Budget = 256 << 20;
    private const int AdviseBytes = 1 << 20;

    private readonly string _path;
    private readonly Thread _thread;
    private volatile bool _stopped;

    public SourcePrefetch(string path)
    {
        _path = path;
        _thread = new Thread(Run) { IsBackground = true, Name = "convert prefetch" };
        _thread.Start();
    }

    private void Run()
    {
        try
        {
            if (!Native.HostFile.IsRegularFile(_path)) return;   // never opens a FIFO or a device
            using SafeFileHandle file = File.OpenHandle(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            long end = RandomAccess.GetLength(file), advised = 0;
            // Range by range as it goes (a sparse file may have millions), up to the budget.
            for (long at = 0; advised < Budget && !_stopped && Native.Libc.NextDataRange(file, at, end) is { } range;)
            {
                long hole = range.Offset + range.Length;
                for (at = range.Offset; at < hole && advised < Budget && !_stopped; at += AdviseBytes)
                {
                    long n = Math.Min(AdviseBytes, hole - at);
                    Native.Libc.AdviseWillNeed(file, at, n);   // queues the read and returns; nothing is copied
                    advised += n;
                }
                at = hole;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // only a hint: the copy reads regardless
    }

    /// <summary>The copy starts: it reads for itself from here (reads already queued go on).</summary>
    public void Stop() => _stopped = true;

    public void Dispose()
    {
        _stopped = true;
        _thread.Join();   // at most one fadvise away
    }
}
