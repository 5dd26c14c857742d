using CowDisk.Engine.Native;

namespace CowDisk.Cli.Commands;

/// <summary>
/// The bytes `io write --from FILE` writes. A regular file must hold LENGTH bytes, checked before the image is
/// opened, so a short one writes nothing. Anything else (a pipe, /dev/stdin, /dev/zero) has no length to check:
/// it is read as a stream of exactly LENGTH bytes, and one that ends early is an error naming what was written.
/// </summary>
internal sealed class WriteSource : IDisposable
{
    private readonly FileStream _stream;
    private long _read;

    public string Path { get; }
    public long Length { get; }

    private WriteSource(string path, FileStream stream, long length)
    {
        Path = path;
        _stream = stream;
        Length = length;
    }

    public static WriteSource Open(string path, long length)
    {
        if (Directory.Exists(path)) throw new CliException($"--from {path} is a folder, not a file");
        if (!File.Exists(path)) throw new CliException($"--from file {path} does not exist");
        if (HostFile.IsRegularFile(path))
        {
            long size = new FileInfo(path).Length;
            if (size < length) throw new CliException($"--from file {path} has {size} bytes, fewer than the {length} to write; nothing was written");
        }
        FileStream stream;
        try { stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0); }
        catch (UnauthorizedAccessException) { throw new CliException($"no permission to read --from file {path}"); }
        return new WriteSource(path, stream, length);
    }

    /// <summary>Fills buffer with the next bytes; written is what already went to the image, for the error.</summary>
    public void ReadExactly(Span<byte> buffer, long written, long offset)
    {
        int n = _stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        _read += n;
        if (n < buffer.Length)
            throw new CliException($"--from {Path} ended after {_read} of {Length} bytes; " +
                                   (written == 0 ? "nothing was written" : $"only {written} bytes were written, at offset {offset}"));
    }

    public void Dispose() => _stream.Dispose();
}
