using System.Buffers.Binary;
using System.Runtime.InteropServices;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Storage;

namespace CowDisk.Engine.Images.Qcow2;

/// <summary>
/// A bounded LRU cache of L2 tables, keyed by the table's host offset. Tables are kept as native-endian words
/// (converted once, at load). Callers copy out the words they need under the cache's lock and decode them
/// outside it, so a table can be evicted and its buffer reused at any time. A miss reads the table under the
/// lock: misses are rare (one table maps cluster_size²/8 bytes of disk), hits cost a dictionary look-up and a copy.
/// Nothing is allocated once every slot holds a table.
/// </summary>
internal sealed class Qcow2L2Cache
{
    private readonly object _lock = new();
    private readonly IStorageFile _file;
    private readonly string _imagePath;
    private readonly int _tableWords;
    private readonly Dictionary<long, int> _index;
    private readonly ulong[]?[] _tables;
    private readonly long[] _keys;
    private readonly int[] _newer, _older;   // doubly linked recency list: _mru … _lru
    private int _mru = -1, _lru = -1, _used;

    /// <summary>Tables read from the file so far (misses), for tests and measurements.</summary>
    public long Loads { get; private set; }
    public int Capacity => _tables.Length;

    public Qcow2L2Cache(IStorageFile file, string imagePath, int clusterSize, int capacity)
    {
        _file = file;
        _imagePath = imagePath;
        _tableWords = clusterSize / 8;
        capacity = Math.Max(1, capacity);
        _index = new Dictionary<long, int>(capacity);
        _tables = new ulong[capacity][];
        _keys = new long[capacity];
        _newer = new int[capacity];
        _older = new int[capacity];
    }

    /// <summary>Copies destination.Length words of the L2 table at <paramref name="tableOffset"/>, from word <paramref name="firstWord"/>.</summary>
    public void Copy(long tableOffset, int firstWord, Span<ulong> destination)
    {
        lock (_lock)
        {
            if (_index.TryGetValue(tableOffset, out int slot)) MakeNewest(slot);
            else slot = Load(tableOffset);
            _tables[slot].AsSpan(firstWord, destination.Length).CopyTo(destination);
        }
    }

    private int Load(long tableOffset)
    {
        int slot;
        if (_used < _tables.Length) slot = _used++;
        else
        {
            slot = _lru;
            Unlink(slot);
            _index.Remove(_keys[slot]);
        }
        var table = _tables[slot] ??= new ulong[_tableWords];
        var bytes = MemoryMarshal.AsBytes(table.AsSpan());
        int n;
        try { n = _file.Read(tableOffset, bytes); }
        catch
        {
            ReturnFree(slot);
            throw;
        }
        if (n != bytes.Length)
        {
            ReturnFree(slot);
            throw new CorruptImageException($"qcow2 image {_imagePath}: the L2 table at 0x{tableOffset:x} is cut off by the end of the file");
        }
        for (int i = 0; i < table.Length; i++)   // big-endian on disk, native in the cache
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(MemoryMarshal.AsBytes(table.AsSpan(i, 1)));
        Loads++;
        _keys[slot] = tableOffset;
        _index[tableOffset] = slot;
        LinkNewest(slot);
        return slot;
    }

    /// <summary>A slot whose load failed: the oldest one, holding nothing.</summary>
    private void ReturnFree(int slot)
    {
        _keys[slot] = -1;
        _newer[slot] = _lru;
        _older[slot] = -1;
        if (_lru >= 0) _older[_lru] = slot; else _mru = slot;
        _lru = slot;
    }

    private void MakeNewest(int slot)
    {
        if (_mru == slot) return;
        Unlink(slot);
        LinkNewest(slot);
    }

    private void LinkNewest(int slot)
    {
        _older[slot] = _mru;
        _newer[slot] = -1;
        if (_mru >= 0) _newer[_mru] = slot; else _lru = slot;
        _mru = slot;
    }

    private void Unlink(int slot)
    {
        int newer = _newer[slot], older = _older[slot];
        if (newer >= 0) _older[newer] = older; else _mru = older;
        if (older >= 0) _newer[older] = newer; else _lru = newer;
    }
}
