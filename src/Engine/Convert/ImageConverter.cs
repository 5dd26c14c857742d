using System.Buffers;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Engine.Convert;

/// <summary>
/// `cowdisk convert`: copies what a source reads into a new image of another format. Only data is copied: the
/// source's mapping says where it has any (holes and zero clusters are skipped without reading), and all-zero
/// clusters found in the data are skipped too, so the output is as sparse as it can be. Reading (a thread of its
/// own) overlaps writing, in runs of up to 4 MiB.
/// </summary>
public static class ImageConverter
{
    /// <summary>The largest read and write; big enough to stream, small enough that a few in flight cost little.</summary>
    private const int ChunkBytes = 4 << 20;
    /// <summary>Chunks read and written at once (qemu-img convert keeps 8 requests in flight by default).</summary>
    private const int Workers = 8;
    /// <summary>A raw output's zero-detection granule: a file system block (a cowdisk or qcow2 output uses its cluster size).</summary>
    private const int ZeroGranule = 4096;

    public static ConvertResult Convert(ImageRef source, string destination, ConvertOptions options)
    {
        if (source.Path.Length == 0) throw new ImageOpenException("name the source image before '@'");
        string full = Destination(destination);
        if (Directory.Exists(full)) throw new ImageOpenException($"{full} is a folder; name the output file");
        if (!Directory.Exists(Path.GetDirectoryName(full))) throw new ImageOpenException($"the folder of {full} does not exist");
        if (File.Exists(full) && !Native.HostFile.IsRegularFile(full))
            throw new ImageOpenException($"{full} is not a regular file (a device?); convert writes image files, never into devices");
        if (File.Exists(full) && !options.Force) throw new ImageOpenException($"{full} already exists (use --force to replace it)");
        Staging.RemoveAbandoned(full);

        // The disk reads the start of the source while its metadata is opened and the output created.
        using var prefetch = new SourcePrefetch(Path.GetFullPath(source.Path));
        using var device = OpenSource(source, options);
        // We read a raw file's data ranges ourselves, in large pieces: readahead would read its holes too.
        if (device is RawFileDevice rawSource) rawSource.AdviseNoReadahead();
        // Never over a file the source reads (the image itself or anything in its backing chain).
        foreach (string read in BaseImage.ChainFiles(device))
            if (SameFile(read, full)) throw new ImageOpenException($"the output would replace {read}, which the source reads; name another file");
        string sourceFormat = options.SourceIsRaw ? BaseImage.RawFormat : BaseImage.FormatName(device);
        using IConvertTarget target = options.Target switch
        {
            ConvertFormat.Raw => new RawTarget(full, device.Size, options.Force),
            ConvertFormat.CowDisk => new CowDiskTarget(full, device.Size, options.ClusterSize, options.Settings, options.Force),
            _ => new Qcow2Target(full, device.Size, options.ClusterSize, options.Compress, options.Force),
        };
        // Work in the output's clusters: a cluster with any data is read and written whole (zeros around it
        // included), once, and all-zero ones are skipped.
        int granule = target switch
        {
            CowDiskTarget cow => cow.Image.Geometry.ClusterSize,
            Qcow2Target qcow2 => qcow2.ClusterSize,
            _ => ZeroGranule,
        };
        if (options.WithSnapshots)
        {
            if (device is not Images.Qcow2.Qcow2Image qcow2 || source.Snapshot is not null)
                throw new ImageOpenException("--with-snapshots needs a qcow2 image (not one of its snapshots) as the source");
            prefetch.Stop();
            var imported = SnapshotImport.Run(qcow2, (CowDiskTarget)target, granule, options.Progress, options.Cancel);
            target.Complete();
            return new ConvertResult(full, sourceFormat, device.Size, imported.DataBytes, imported.WrittenBytes, imported.Snapshots);
        }
        var runs = Align(DataRuns(device), granule, device.Size);
        long total = runs.Sum(r => r.Length);
        prefetch.Stop();
        long written = Copy(device, runs, target, granule, total, options.Progress, cancel: options.Cancel);
        target.Complete();
        return new ConvertResult(full, sourceFormat, device.Size, total, written, 0);
    }

    /// <summary>The destination with symlinks followed: the file they name is the one replaced, not the link.</summary>
    private static string Destination(string destination)
    {
        string full = Path.GetFullPath(destination);
        try { return new FileInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full; }
        catch (IOException) { return full; }
    }

    private static bool SameFile(string a, string b)
    {
        try { return Native.HostFile.Inode(a) is { } x && Native.HostFile.Inode(b) is { } y && x == y; }
        catch (IOException) { return false; }
    }

    private static IBlockDevice OpenSource(ImageRef source, ConvertOptions options)
    {
        string path = Path.GetFullPath(source.Path);
        if (options.SourceIsRaw)
        {
            if (source.Snapshot is not null) throw new ImageOpenException("a raw source has no snapshots");
            if (!File.Exists(path)) throw new ImageOpenException($"image {path} does not exist");
            return new RawFileDevice(path, readOnly: true);
        }
        // Any format, read-only: a cowdisk image or snapshot (through its writer if attached), qcow2, or raw.
        return BaseImage.Open(source.Snapshot is null ? path : $"{path}@{source.Snapshot}", depth: 0);
    }

    /// <summary>The runs that hold data (in this image or a base below it), from the mapping; a raw file's allocated ranges.</summary>
    internal static List<(long Offset, long Length)> DataRuns(IBlockDevice device)
    {
        var runs = new List<(long Offset, long Length)>();
        foreach (var run in BaseImage.MapOf(device, 0, device.Size, 0))
        {
            if (run.Source is MapSource.Zero or MapSource.Unallocated) continue;
            if (runs.Count > 0 && runs[^1].Offset + runs[^1].Length == run.Start) runs[^1] = (runs[^1].Offset, runs[^1].Length + run.Length);
            else runs.Add((run.Start, run.Length));
        }
        return runs;
    }

    /// <summary>The runs widened to whole granules (clipped to the disk) and merged where they meet or overlap.</summary>
    internal static List<(long Offset, long Length)> Align(List<(long Offset, long Length)> runs, int granule, long size)
    {
        var aligned = new List<(long Offset, long Length)>(runs.Count);
        foreach (var (offset, length) in runs)
        {
            long start = offset / granule * granule, end = Math.Min(size, (offset + length + granule - 1) / granule * granule);
            if (aligned.Count > 0 && aligned[^1].Offset + aligned[^1].Length >= start)
                aligned[^1] = (aligned[^1].Offset, Math.Max(aligned[^1].Offset + aligned[^1].Length, end) - aligned[^1].Offset);
            else aligned.Add((start, end - start));
        }
        return aligned;
    }

    /// <summary>
    /// Copies the runs in chunks of up to 4 MiB with several workers at once, each reading a chunk and writing it
    /// (reads overlap each other and the writes). A target that needs ascending writes (qcow2) gets them in order:
    /// a worker waits for the chunks before its own to be written. Returns the bytes written. All-zero granules are
    /// skipped, or, over an output that already holds data (zeroSkipped), made to read as zeros.
    /// </summary>
    internal static long Copy(IBlockDevice device, List<(long Offset, long Length)> runs, IConvertTarget target, int granule, long total,
        Action<long, long>? progress, bool zeroSkipped = false, long doneBefore = 0, CancellationToken cancel = default)
    {
        var chunks = new List<(long Offset, int Length)>();
        foreach (var (offset, length) in runs)
            for (long at = offset; at < offset + length;)
            {
                // Chunks end on granule boundaries (so zero detection sees whole clusters), except at a run's end.
                long end = Math.Min(offset + length, (at + ChunkBytes) / granule * granule);
                if (end <= at) end = Math.Min(offset + length, at + ChunkBytes);
                chunks.Add((at, (int)(end - at)));
                at = end;
            }
        var gate = new object();
        int next = 0, nextToWrite = 0;
        long done = doneBefore, written = 0;
        Exception? failure = null;
        void Work()
        {
            var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
            try
            {
                while (true)
                {
                    int index;
                    lock (gate)
                    {
                        if (failure is not null || next >= chunks.Count) return;
                        if (cancel.IsCancellationRequested) { failure = new OperationCanceledException(cancel); Monitor.PulseAll(gate); return; }
                        index = next++;
                    }
                    var (offset, length) = chunks[index];
                    var data = buffer.AsSpan(0, length);
                    device.Read(offset, data);
                    if (target.OrderedWrites)
                        lock (gate)
                        {
                            while (nextToWrite != index && failure is null) Monitor.Wait(gate);
                            if (failure is not null) return;
                        }
                    long n = WriteNonZero(target, offset, data, granule, zeroSkipped);
                    lock (gate)
                    {
                        written += n;
                        done += length;
                        if (target.OrderedWrites) nextToWrite++;
                        progress?.Invoke(done, total);
                        Monitor.PulseAll(gate);
                    }
                }
            }
            catch (Exception e)
            {
                lock (gate)
                {
                    failure ??= e;
                    Monitor.PulseAll(gate);
                }
            }
            finally { ArrayPool<byte>.Shared.Return(buffer); }
        }
        var workers = Enumerable.Range(0, Math.Min(Workers, Math.Max(1, chunks.Count)))
            .Select(i => new Thread(Work) { IsBackground = true, Name = $"convert {i}" }).ToList();
        foreach (var worker in workers) worker.Start();
        foreach (var worker in workers) worker.Join();
        if (failure is not null)
            throw failure is BlockDeviceException or IOException or ImageOpenException or OperationCanceledException ? failure : new IOException($"converting failed: {failure.Message}", failure);
        return written;
    }

    /// <summary>Writes data at offset, leaving out granules (aligned to the disk) that are all zeros.</summary>
    private static long WriteNonZero(IConvertTarget target, long offset, ReadOnlySpan<byte> data, int granule, bool zeroSkipped)
    {
        long written = 0;
        int start = -1;
        for (int at = 0; at < data.Length;)
        {
            int next = (int)Math.Min(data.Length, (offset + at) / granule * granule + granule - offset);
            bool zero = data[at..next].IndexOfAnyExcept((byte)0) < 0;
            if (zero && zeroSkipped) target.Zero(offset + at, next - at);
            if (!zero && start < 0) start = at;
            if (zero && start >= 0)
            {
                target.Write(offset + start, data[start..at]);
                written += at - start;
                start = -1;
            }
            at = next;
        }
        if (start >= 0)
        {
            target.Write(offset + start, data[start..]);
            written += data.Length - start;
        }
        return written;
    }
}
