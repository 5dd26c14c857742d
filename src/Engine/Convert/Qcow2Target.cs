using System.Buffers.Binary;
using System.IO.Compression;
using CowDisk.Format.Qcow2;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Convert;

/// <summary>
/// Writes a new qcow2 (version 3, 16-bit refcounts, no backing) from writes that arrive in ascending offset
/// order, in one pass: cluster 0 the header, then the L1 table, then data clusters appended as they come with
/// each L2 table appended after its range's data, then the refcount blocks and table, and the header last.
/// Unwritten clusters stay unallocated (they read as zeros). With compression each cluster is deflated (raw
/// deflate, qcow2's zlib type) on all cores; one that does not shrink is stored as it is.
/// </summary>
internal sealed class Qcow2Target : IConvertTarget
{
    public const int DefaultClusterSize = 64 << 10;
    private const int RefcountOrder = 4;
    private const int SectorSize = 512;
    private const int HeaderLength = Qcow2Header.CompressionTypeMinSize;

    private readonly string _destination;
    private readonly bool _replace;
    private readonly string _temporary;
    private readonly SafeFileHandle _file;
    private readonly long _size;
    private readonly int _clusterSize;
    public int ClusterSize => _clusterSize;
    public bool OrderedWrites => true;
    private readonly int _clusterBits;
    private readonly bool _compress;
    private readonly long _l2Entries;
    private readonly ulong[] _l1;
    private readonly long _l1Clusters;
    private readonly byte[] _l2;
    private long _l2Index = -1;
    /// <summary>Next free byte of the file (data and L2 tables are appended).</summary>
    private long _end;
    /// <summary>Compressed data packs into clusters: where the next extent goes; 0 when none is open.</summary>
    private long _compressedCursor;
    /// <summary>Refcounts above one (clusters shared by several compressed extents); every other used cluster has one.</summary>
    private readonly Dictionary<long, int> _sharedRefcounts = [];
    private readonly HashSet<long> _compressedClusters = [];
    private long _lastOffset = -1;
    /// <summary>
    /// The file is written front to back: the disk is asked to write it out every this many bytes, in large requests
    /// (a hint per write, 1 MiB for a disk whose data comes in 1 MiB pieces, made as many requests: 1000 per GiB
    /// against qemu-img's 270).
    /// </summary>
    private const long WritebackEvery = 16 << 20;
    private long _writebackFrom;
    private bool _completed;

    /// <summary>qemu's limit on the active L1 table (32 MiB of entries): a bigger one no qemu opens.</summary>
    private const long MaxL1Entries = 4 << 20;

    public Qcow2Target(string destination, long size, int? clusterSize, bool compress, bool replace)
    {
        _replace = replace;
        _clusterSize = clusterSize ?? DefaultClusterSize;
        if (_clusterSize is < 512 or > 2 << 20 || (_clusterSize & (_clusterSize - 1)) != 0)
            throw new Images.ImageOpenException($"a qcow2 cluster size must be a power of two from 512 to 2M, not {_clusterSize}");
        _clusterBits = System.Numerics.BitOperations.Log2((uint)_clusterSize);
        _destination = destination;
        // qemu works in 512-byte sectors and would drop a partial last one: the disk grows to a whole sector
        // (its tail reads as zeros), as qemu-img convert does.
        _size = (size + SectorSize - 1) / SectorSize * SectorSize;
        _compress = compress;
        _l2Entries = _clusterSize / Qcow2L2Entry.EncodedSize;
        long clusters = (size + _clusterSize - 1) >> _clusterBits;
        long l1Entries = Math.Max(1, (clusters + _l2Entries - 1) / _l2Entries);
        if (l1Entries > MaxL1Entries)
            throw new Images.ImageOpenException($"a {size}-byte disk in {_clusterSize}-byte clusters needs an L1 table of {l1Entries} entries, more than qemu opens ({MaxL1Entries}); use a larger --cluster-size");
        _l1 = new ulong[l1Entries];
        _l1Clusters = ((long)_l1.Length * Qcow2L1Entry.EncodedSize + _clusterSize - 1) >> _clusterBits;
        _l2 = new byte[_clusterSize];
        _end = (1 + _l1Clusters) << _clusterBits;
        _temporary = Staging.PathFor(destination);
        _file = File.OpenHandle(_temporary, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        if (offset < _lastOffset || (offset & (_clusterSize - 1)) != 0)
            throw new InvalidOperationException($"qcow2 output needs ascending cluster-aligned writes (got {offset} after {_lastOffset})");
        _lastOffset = offset + data.Length;
        if (_compress) WriteCompressed(offset, data);
        else
        {
            // Contiguous in the file while the writes stay inside one L2 table's range.
            while (!data.IsEmpty)
            {
                long cluster = offset >> _clusterBits;
                SwitchL2(cluster / _l2Entries);
                long rangeEnd = (cluster / _l2Entries + 1) * _l2Entries << _clusterBits;
                int n = (int)Math.Min(data.Length, rangeEnd - offset);
                long host = _end;
                RandomAccess.Write(_file, data[..n], host);
                int count = (n + _clusterSize - 1) >> _clusterBits;
                for (int i = 0; i < count; i++)
                    SetL2(cluster + i, Qcow2L2Entry.Standard((ulong)(host + ((long)i << _clusterBits))));
                _end += (long)count << _clusterBits;
                data = data[n..];
                offset += n;
            }
            if (_end - _writebackFrom >= WritebackEvery)
            {
                Native.Libc.StartWriteback(_file, _writebackFrom, _end - _writebackFrom);   // the disk writes while we read on
                _writebackFrom = _end;
            }
        }
    }

    private void WriteCompressed(long offset, ReadOnlySpan<byte> data)
    {
        int count = (data.Length + _clusterSize - 1) >> _clusterBits;
        var outputs = new byte[count][];
        var lengths = new int[count];
        var input = data.ToArray();
        Parallel.For(0, count, i =>
        {
            int start = i << _clusterBits, length = Math.Min(_clusterSize, input.Length - start);
            var cluster = new byte[_clusterSize];   // a short last cluster is padded with zeros, as it reads
            Array.Copy(input, start, cluster, 0, length);
            using var output = new MemoryStream(_clusterSize);
            using (var deflate = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true)) deflate.Write(cluster);
            if (output.Length < _clusterSize - SectorSize) { outputs[i] = output.ToArray(); lengths[i] = (int)output.Length; }
            else { outputs[i] = cluster; lengths[i] = -1; }   // does not shrink: stored as a standard cluster
        });
        for (int i = 0; i < count; i++)
        {
            long cluster = (offset >> _clusterBits) + i;
            SwitchL2(cluster / _l2Entries);
            if (lengths[i] < 0)
            {
                CloseCompressedCluster();
                long host = _end;
                RandomAccess.Write(_file, outputs[i], host);
                _end += _clusterSize;
                SetL2(cluster, Qcow2L2Entry.Standard((ulong)host));
                continue;
            }
            int length = lengths[i];
            if (_compressedCursor == 0)
            {
                _compressedCursor = _end;   // a new cluster to pack extents into
                _end += _clusterSize;
            }
            long at = _compressedCursor;
            long last = (at + length - 1) >> _clusterBits;
            while ((_end >> _clusterBits) <= last) _end += _clusterSize;   // an extent may run into the next cluster
            for (long c = at >> _clusterBits; c <= last; c++) CountCompressed(c);
            RandomAccess.Write(_file, outputs[i].AsSpan(0, length), at);
            uint sectors = (uint)((at + length - 1) / SectorSize - at / SectorSize + 1);
            SetL2(cluster, Qcow2L2Entry.Compressed((ulong)at, sectors, _clusterBits));
            long next = at + length;   // packed byte by byte, as qemu packs them
            _compressedCursor = next >= _end ? 0 : next;
        }
    }

    /// <summary>
    /// Each compressed extent adds one to the refcount of every cluster its sectors touch (as qemu-img check counts:
    /// from the sector holding its first byte through the one holding its last).
    /// </summary>
    private void CountCompressed(long hostCluster)
    {
        if (_compressedClusters.Add(hostCluster)) return;   // the first extent in it: the default refcount of one
        _sharedRefcounts[hostCluster] = _sharedRefcounts.GetValueOrDefault(hostCluster, 1) + 1;
    }

    private void CloseCompressedCluster() => _compressedCursor = 0;

    private void SwitchL2(long index)
    {
        if (index == _l2Index) return;
        FlushL2();
        _l2Index = index;
        Array.Clear(_l2);
    }

    private void SetL2(long cluster, Qcow2L2Entry entry) =>
        entry.Write(_l2.AsSpan((int)(cluster % _l2Entries) * Qcow2L2Entry.EncodedSize));

    /// <summary>Appends the current L2 table after its range's data (a new cluster: compressed extents never share it).</summary>
    private void FlushL2()
    {
        if (_l2Index < 0) return;
        CloseCompressedCluster();
        long host = _end;
        RandomAccess.Write(_file, _l2, host);
        _end += _clusterSize;
        _l1[_l2Index] = Qcow2L1Entry.Create((ulong)host, copied: true).Raw;
        _l2Index = -1;
    }

    public void Complete()
    {
        FlushL2();
        long used = _end >> _clusterBits;   // clusters in use before the refcount structures
        long perBlock = Qcow2RefcountBlock.EntriesPerBlock(_clusterBits, RefcountOrder);
        long blocks = 0, tableClusters = 0;
        while (true)   // the refcount structures count themselves: grow until they cover everything
        {
            long total = used + blocks + tableClusters;
            long needBlocks = (total + perBlock - 1) / perBlock;
            long needTable = (needBlocks * 8 + _clusterSize - 1) >> _clusterBits;
            if (needBlocks == blocks && needTable == tableClusters) break;
            blocks = needBlocks;
            tableClusters = needTable;
        }
        long blocksStart = used, tableStart = used + blocks, clustersTotal = tableStart + tableClusters;
        var block = new byte[_clusterSize];
        var table = new byte[tableClusters << _clusterBits];
        for (long b = 0; b < blocks; b++)
        {
            Array.Clear(block);
            for (long i = 0; i < perBlock; i++)
            {
                long cluster = b * perBlock + i;
                if (cluster >= clustersTotal) break;
                Qcow2RefcountBlock.Set(block, i, RefcountOrder, (ulong)_sharedRefcounts.GetValueOrDefault(cluster, 1));
            }
            RandomAccess.Write(_file, block, (blocksStart + b) << _clusterBits);
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(b * 8)), (ulong)((blocksStart + b) << _clusterBits));
        }
        RandomAccess.Write(_file, table, tableStart << _clusterBits);
        var l1 = new byte[_l1Clusters << _clusterBits];
        for (int i = 0; i < _l1.Length; i++) BinaryPrimitives.WriteUInt64BigEndian(l1.AsSpan(i * 8), _l1[i]);
        RandomAccess.Write(_file, l1, _clusterSize);
        RandomAccess.SetLength(_file, clustersTotal << _clusterBits);

        var header = new byte[_clusterSize];   // the rest of cluster 0 zero: the header extension list is empty (end marker)
        new Qcow2Header(3, 0, 0, (uint)_clusterBits, (ulong)_size, Qcow2CryptMethod.None, (uint)_l1.Length, (ulong)_clusterSize,
            (ulong)(tableStart << _clusterBits), (uint)tableClusters, 0, 0, RefcountOrder: RefcountOrder, HeaderLength: HeaderLength,
            CompressionType: Qcow2CompressionType.Zlib).Write(header);
        // Everything the header points at durable before the header; the header before the name.
        Native.Libc.FDataSync(_file);
        RandomAccess.Write(_file, header, 0);
        Native.Libc.FDataSync(_file);
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
