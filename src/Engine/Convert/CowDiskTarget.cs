using CowDisk.Engine.Images;

namespace CowDisk.Engine.Convert;

/// <summary>A new cowdisk image: data is written through the engine (unwritten clusters stay unallocated).</summary>
internal sealed class CowDiskTarget : IConvertTarget
{
    private readonly string _destination;
    private readonly bool _replace;
    private readonly ImageFiles _staging;
    private CowImage? _image;
    private bool _completed;

    public CowImage Image => _image ?? throw new InvalidOperationException("the output image is closed");

    public CowDiskTarget(string destination, long size, int? clusterSize, EngineSettings settings, bool replace)
    {
        _destination = destination;
        _replace = replace;
        _staging = ImageFiles.For(Staging.PathFor(destination));
        foreach (string stale in _staging.Existing()) File.Delete(stale);   // left by a conversion of ours that died
        var options = new ImageCreateOptions { Size = size };
        if (clusterSize is { } cs) options = options with { ClusterSize = cs };
        // One commit at the end: the image is not the destination until renamed, so commits on the way would only
        // force the data out early (each commit fdatasyncs the data file first).
        _image = CowImage.Create(_staging.DataPath, options, settings with { CommitIntervalMs = int.MaxValue, CommitMaxDirtyChunks = int.MaxValue });
    }

    /// <summary>Written bytes between writeback hints: the disk streams the data out while the copy goes on.</summary>
    private const long WritebackEvery = 32 << 20;
    private long _sinceWriteback;

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        Image.Write(offset, data);
        if (Interlocked.Add(ref _sinceWriteback, data.Length) >= WritebackEvery)
        {
            Interlocked.Exchange(ref _sinceWriteback, 0);
            Image.StartWriteback();
        }
    }

    public void Zero(long offset, long length) => Image.Discard(offset, length);

    public void Complete()
    {
        Image.Flush();
        _image!.Dispose();   // a clean close: metadata folded and durable
        _image = null;
        // The data file last: an image is there once its data file is, so the metadata must be first.
        var final = ImageFiles.For(_destination);
        if (!_replace && File.Exists(final.DataPath))
            throw new ImageOpenException($"{final.DataPath} appeared while converting; it was left alone (use --force to replace it)");
        foreach (string old in final.Existing().Skip(1)) File.Delete(old);
        foreach (var (from, to) in new[] { (_staging.MetadataPath, final.MetadataPath), (_staging.MetadataLogPath, final.MetadataLogPath) })
            if (File.Exists(from)) File.Move(from, to, overwrite: true);
        Staging.Commit(_staging.DataPath, final.DataPath, _replace);
        _completed = true;
    }

    public void Dispose()
    {
        _image?.Dispose();
        if (!_completed) foreach (string file in _staging.Existing()) File.Delete(file);
    }
}
