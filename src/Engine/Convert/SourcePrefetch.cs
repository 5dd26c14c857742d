using System.Runtime.InteropServices;
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
internal sealed partial class SourcePrefetch : IDisposable
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

    [LibraryImport("libc", SetLastError = true)]
    private static partial long lseek(int fd, long offset, int whence);

    private const int SEEK_DATA = 3, SEEK_HOLE = 4;

    [LibraryImport("libc")]
    private static partial int posix_fadvise(int fd, long offset, long len, int advice);

    private const int POSIX_FADV_WILLNEED = 3;

    private void Run()
    {
        try
        {
            if (!Native.HostFile.IsRegularFile(_path)) return;   // never opens a FIFO or a device
            using SafeFileHandle file = File.OpenHandle(_path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            int fd = (int)file.DangerousGetHandle();
            long end = RandomAccess.GetLength(file), advised = 0;
            for (long at = 0; at < end && advised < Budget && !_stopped;)
            {
                // The next allocated range, found as it goes (a sparse file may have millions).
                long data = lseek(fd, at, SEEK_DATA);
                if (data < 0) return;   // no data past at (ENXIO), or no SEEK_DATA: nothing more to hint
                long hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0 || hole > end) hole = end;
                for (at = data; at < hole && advised < Budget && !_stopped; at += AdviseBytes)
                {
                    long n = Math.Min(AdviseBytes, hole - at);
                    posix_fadvise(fd, at, n, POSIX_FADV_WILLNEED);   // queues the read and returns; nothing is copied
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
