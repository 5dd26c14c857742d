using CowDisk.Engine.Devices;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Storage;
using CowDisk.Format.Image;
using CowDisk.Format.Mapping;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Images;

/// <summary>
/// A snapshot read while another process writes the image (an attach daemon): its mappings come from that
/// writer (exported through its control socket), its data straight from the data file, which the writer never
/// changes under a snapshot. A view lock on the image file keeps the snapshot from being deleted meanwhile.
/// Read-only; reads go block by block to the data file, the base, or zeros.
/// </summary>
public sealed class SnapshotView : IBlockDevice
{
    private readonly ClusterGeometry _geometry;
    private readonly MappingTable _table;
    private readonly Snapshots.Layers _layers;
    private readonly IStorageFile _extents;
    private readonly SafeFileHandle _imageFile;   // holds the view lock
    private readonly IBlockDevice? _base;
    private string? _dataDevice;

    public string ImagePath { get; }
    public string SnapshotName { get; }
    public Guid ImageId { get; private init; }
    public uint Epoch { get; private init; }
    public long Size => _geometry.VirtualSize;
    public BlockDeviceCapabilities Capabilities => BlockDeviceCapabilities.ReadOnly;

    /// <param name="exported">The snapshot's mappings and layers (<see cref="ViewExport"/>, from the writer).</param>
    /// <param name="backing">The image's base, resolved, or null.</param>
    /// <param name="dataDevice">The data device holding the extents, or null for the data file.</param>
    public static SnapshotView Open(string imagePath, string snapshot, Guid imageId, uint epoch, int clusterSize, long virtualSize, byte[] exported,
        string? backing, string? dataDevice, SafeFileHandle heldImageFile, int depth = 0, IReadOnlyList<string>? chain = null)
    {
        var geometry = new ClusterGeometry(clusterSize, virtualSize);
        var table = new MappingTable(geometry.BlockCount);
        var layers = ViewExport.Decode(exported, table);
        IStorageFile? extents = null;
        IBlockDevice? baseDevice = null;
        try
        {
            extents = dataDevice is null ? HostStorage.Instance.Open(imagePath, StorageAccess.Read) : HostStorage.Instance.OpenDevice(dataDevice, StorageAccess.Read);
            if (backing is not null) baseDevice = BaseImage.Open(backing, depth + 1, (chain ?? []).Append(imagePath).ToArray());
            return new SnapshotView(imagePath, snapshot, geometry, table, layers, extents, heldImageFile, baseDevice) { ImageId = imageId, Epoch = epoch, _dataDevice = dataDevice };
        }
        catch
        {
            extents?.Dispose();
            baseDevice?.Dispose();
            heldImageFile.Dispose();
            throw;
        }
    }

    private SnapshotView(string imagePath, string snapshot, ClusterGeometry geometry, MappingTable table, Snapshots.Layers layers,
        IStorageFile extents, SafeFileHandle imageFile, IBlockDevice? baseDevice)
    {
        ImagePath = imagePath; SnapshotName = snapshot; _geometry = geometry; _table = table; _layers = layers; _extents = extents;
        _imageFile = imageFile; _base = baseDevice;
    }

    public void Read(long offset, Span<byte> buffer)
    {
        if (offset < 0 || offset > Size - buffer.Length)
            throw new BlockDeviceException($"I/O at {offset}+{buffer.Length} is outside the disk ({Size} bytes)");
        while (!buffer.IsEmpty)
        {
            long block = _geometry.BlockOf(offset);
            int inBlock = _geometry.OffsetInBlock(offset);
            int n = (int)Math.Min(buffer.Length, _geometry.ClusterSize - inBlock);
            var part = buffer[..n];
            var m = _table.GetMapping(block);
            switch (m.Source)
            {
                case MappingSource.Data when _layers.TryGet(block, m.Epoch, out var layer):
                    for (int pos = 0; pos < n;)
                    {
                        int len = _geometry.SubclusterRun(layer.Mask, inBlock + pos, n - pos, out bool own);
                        ReadCluster(own ? m.PhysicalCluster : layer.UnderCluster, inBlock + pos, part.Slice(pos, len));
                        pos += len;
                    }
                    break;
                case MappingSource.Data:
                    ReadCluster(m.PhysicalCluster, inBlock, part);
                    break;
                case MappingSource.Unallocated when _base is not null:
                    long available = Math.Clamp(_base.Size - offset, 0, n);
                    if (available > 0) _base.Read(offset, part[..(int)available]);
                    part[(int)available..].Clear();
                    break;
                default:
                    part.Clear();
                    break;
            }
            buffer = buffer[n..];
            offset += n;
        }
    }

    private void ReadCluster(long cluster, int inBlock, Span<byte> part)
    {
        int got = _extents.Read(_geometry.ClusterOffset(cluster) + inBlock, part);
        part[got..].Clear();   // the unwritten tail of a cluster at the file's end
    }

    /// <summary>The whole view as runs, like `cowdisk map`.</summary>
    public List<MapRun> Map() => Map(0, Size, 0);

    /// <summary>The view's runs in [start, end), like CowImage.Map (data shown as this snapshot's own).</summary>
    internal List<MapRun> Map(long start, long end, int depth)
    {
        var runs = new List<MapRun>();
        int shift = _geometry.ClusterShift;
        while (start < end)
        {
            long block = start >> shift;
            long blockEnd = Math.Min(end, (block + 1) << shift);
            var m = _table.GetMapping(block);
            if (m.IsData && _layers.TryGet(block, m.Epoch, out var layer))
                CowImage.AppendLayered(runs, _geometry, block, (int)(start - (block << shift)), (int)(blockEnd - (block << shift)), m.PhysicalCluster,
                    layer, MapSource.Own, MapSource.Own, depth, _dataDevice ?? ImagePath);
            else if (m.IsData)
                CowImage.Append(runs, new MapRun(start, blockEnd - start, MapSource.Own, depth,
                    (m.PhysicalCluster << shift) + (start - (block << shift)), _dataDevice ?? ImagePath));
            else if (m.Source == MappingSource.Zero) CowImage.Append(runs, new MapRun(start, blockEnd - start, MapSource.Zero, depth, null, null));
            else if (_base is null || start >= _base.Size) CowImage.Append(runs, new MapRun(start, blockEnd - start, MapSource.Unallocated, depth, null, null));
            else foreach (var r in BaseImage.MapOf(_base, start, Math.Min(blockEnd, _base.Size), depth + 1)) CowImage.Append(runs, r);
            if (_base is not null && start < _base.Size && blockEnd > _base.Size && !m.IsData && m.Source != MappingSource.Zero)
                CowImage.Append(runs, new MapRun(_base.Size, blockEnd - _base.Size, MapSource.Unallocated, depth, null, null));
            start = blockEnd;
        }
        return runs;
    }

    public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None) => throw ReadOnlyError();
    public void Flush() { }
    public void Discard(long offset, long length) => throw ReadOnlyError();
    public void WriteZeroes(long offset, long length) => throw ReadOnlyError();

    private BlockDeviceException ReadOnlyError() => new($"snapshot {ImagePath}@{SnapshotName} is read-only", null, Native.Errno.EROFS);

    public void Dispose()
    {
        _base?.Dispose();
        _extents.Dispose();
        _imageFile.Dispose();   // releases the view lock
    }
}
