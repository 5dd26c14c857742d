using System.IO.Compression;
using ZstdSharp;

namespace CowDisk.Engine.Images.Qcow2;

/// <summary>
/// What one Read needs besides the caller's buffer: a window of L2 words copied out of the cache, and for
/// compressed clusters the compressed bytes, the inflated cluster (kept: the next small read of the same
/// cluster needs no second inflate) and a zstd decoder. Pooled by the image, so a warm read allocates nothing.
/// </summary>
internal sealed class Qcow2ReadContext : IDisposable
{
    /// <summary>Clusters whose L2 entries one window holds.</summary>
    public const int WindowClusters = 1024;

    public readonly ulong[] Entries;
    private readonly int _clusterSize;
    private byte[]? _compressed;
    private byte[]? _cluster;
    private ulong _clusterHost = ulong.MaxValue;
    private uint _clusterSectors;
    private Decompressor? _zstd;
    private ArraySliceStream? _source;

    public Qcow2ReadContext(int wordsPerEntry, int clusterSize)
    {
        Entries = new ulong[WindowClusters * wordsPerEntry];
        _clusterSize = clusterSize;
    }

    /// <summary>The inflated cluster stored at (host, sectors) if it is the one this context holds, else null.</summary>
    public byte[]? Cached(ulong host, uint sectors) => _cluster is not null && _clusterHost == host && _clusterSectors == sectors ? _cluster : null;

    /// <summary>A buffer for up to 2 clusters of compressed data (the most a descriptor can span).</summary>
    public byte[] CompressedBuffer => _compressed ??= new byte[2 * _clusterSize + Format.Qcow2.Qcow2ClusterMapping.SectorSize];

    /// <summary>
    /// Inflates <paramref name="length"/> compressed bytes into this context's cluster buffer. Returns the bytes
    /// produced (at most a cluster: decoding stops there, as the spec says), or -1 if the data is not a valid stream.
    /// </summary>
    public int Inflate(Format.Qcow2.Qcow2CompressionType type, int length, ulong host, uint sectors)
    {
        var cluster = _cluster ??= new byte[_clusterSize];
        _clusterHost = ulong.MaxValue;   // invalid until this inflate succeeds
        int produced = type == Format.Qcow2.Qcow2CompressionType.Zstd ? InflateZstd(length, cluster) : InflateDeflate(length, cluster);
        if (produced == cluster.Length)
        {
            _clusterHost = host;
            _clusterSectors = sectors;
        }
        return produced;
    }

    public byte[] Cluster => _cluster!;

    private int InflateDeflate(int length, byte[] cluster)
    {
        var source = _source ??= new ArraySliceStream(CompressedBuffer);
        source.Reset(length);
        try
        {
            using var inflater = new DeflateStream(source, CompressionMode.Decompress, leaveOpen: true);
            int done = 0;
            while (done < cluster.Length)
            {
                int n = inflater.Read(cluster, done, cluster.Length - done);
                if (n == 0) break;
                done += n;
            }
            return done;
        }
        catch (InvalidDataException) { return -1; }
    }

    private int InflateZstd(int length, byte[] cluster)
    {
        var zstd = _zstd ??= new Decompressor();
        ReadOnlySpan<byte> input = CompressedBuffer.AsSpan(0, length);
        try
        {
            zstd.ResetStream();
            int done = 0;
            while (done < cluster.Length)
            {
                var status = zstd.UnwrapStream(input, cluster.AsSpan(done), out int consumed, out int written);
                if (status == System.Buffers.OperationStatus.InvalidData) return -1;
                input = input[consumed..];
                done += written;
                if (consumed == 0 && written == 0) break;   // no progress: the data ends before the cluster does
            }
            return done;
        }
        catch (ZstdException) { return -1; }
    }

    public void Dispose() => _zstd?.Dispose();

    /// <summary>A read-only stream over the first n bytes of a fixed array, rewound for each inflate.</summary>
    private sealed class ArraySliceStream(byte[] buffer) : Stream
    {
        private int _length, _position;

        public void Reset(int length)
        {
            _length = length;
            _position = 0;
        }

        public override int Read(byte[] destination, int offset, int count) => Read(destination.AsSpan(offset, count));

        public override int Read(Span<byte> destination)
        {
            int n = Math.Min(destination.Length, _length - _position);
            buffer.AsSpan(_position, n).CopyTo(destination);
            _position += n;
            return n;
        }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => _length;
        public override long Position { get => _position; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
