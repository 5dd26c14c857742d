using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Convert;

/// <summary>A sparse raw file: only data is written; holes read as zeros.</summary>
internal sealed class RawTarget : IConvertTarget
{
    private readonly string _destination;
    private readonly bool _replace;
    private readonly string _temporary;
    private readonly SafeFileHandle _file;
    private bool _completed;

    public RawTarget(string destination, long size, bool replace)
    {
        _destination = destination;
        _replace = replace;
        _temporary = Staging.PathFor(destination);
        _file = File.OpenHandle(_temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        RandomAccess.SetLength(_file, size);
    }

    /// <summary>In order: the file system lays the file out as it is written (out-of-order writes fragment it).</summary>
    public bool OrderedWrites => true;

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        RandomAccess.Write(_file, data, offset);
        Native.Libc.StartWriteback(_file, offset, data.Length);   // the disk writes while we read on
    }

    public void Complete()
    {
        Native.Libc.FDataSync(_file);   // the data durable before the name points at it
        _file.Dispose();
        Staging.Commit(_temporary, _destination, _replace);
        _completed = true;
    }

    public void Dispose()
    {
        _file.Dispose();
        if (!_completed) File.Delete(_temporary);
    }
}
