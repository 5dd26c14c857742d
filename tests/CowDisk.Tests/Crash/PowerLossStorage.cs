using CowDisk.Engine.Storage;

namespace CowDisk.Tests.Crash;

/// <summary>
/// A power-loss simulator behind the storage seam, in the spirit of dm-log-writes and CrashMonkey. Every
/// write, resize and barrier is recorded per file, names per folder. A crash image keeps what the last
/// barrier covered plus a random subset of the later writes, applied in random order, each torn at 512-byte
/// sectors; names keep only what the last folder barrier covered. Crash images can be taken at chosen
/// operation counts while the engine runs (inside a commit, between log frames), or at the end.
/// </summary>
public sealed class PowerLossStorage : IStorage
{
    public const int SectorSize = 512;

    private readonly object _lock = new();
    private readonly Dictionary<string, Inode> _names = new();
    private readonly Dictionary<string, Inode> _durableNames = new();
    private readonly SortedDictionary<long, (Random Rng, Action<PowerLossStorage> Taken)> _crashPoints = new();

    /// <summary>Storage operations so far (writes, resizes, barriers, name changes).</summary>
    public long Operations { get; private set; }

    /// <summary>Set by the test before each workload step, read when a crash image is taken.</summary>
    public volatile int Step;

    /// <summary>Fault injection: return an errno to fail the operation (before it has any effect), or 0.</summary>
    public Func<StorageOp, string, int>? Fault;

    public enum StorageOp { Write, Flush, SetLength, Create, SyncFolder }

    /// <summary>
    /// Set: the disk is full. Reserving more fails, and a write that would grow a file past its length and its
    /// reserved (preallocated) space fails with ENOSPC; writes inside them succeed.
    /// </summary>
    public volatile bool NoRoomToReserve;

    /// <summary>Called before every read (outside the lock): lets a test hold a reader mid-I/O.</summary>
    public Action<string, long>? BeforeRead;

    internal sealed class Inode
    {
        public byte[] Durable = Array.Empty<byte>();
        public byte[] Current = Array.Empty<byte>();
        public readonly List<(long Offset, byte[]? Data, long Length)> Pending = new();   // Data null: a resize
        public long Reserved;   // preallocated up to here (fallocate KEEP_SIZE)

        public Inode Clone() => new() { Durable = (byte[])Durable.Clone(), Current = (byte[])Current.Clone() };
    }

    /// <summary>Takes a crash image when the operation count reaches <paramref name="operation"/>.</summary>
    public void CrashAt(long operation, Random rng, Action<PowerLossStorage> taken)
    {
        lock (_lock) _crashPoints[operation] = (rng, taken);
    }

    /// <summary>A power cut now, with the number of the storage operation it came before (taken atomically).</summary>
    public (PowerLossStorage Image, long Before) CrashNow(Random rng)
    {
        lock (_lock) return (Crash(rng), Operations + 1);
    }

    /// <summary>What survives a power cut now: a new storage whose every byte and name is durable.</summary>
    public PowerLossStorage Crash(Random rng)
    {
        lock (_lock)
        {
            var crashed = new PowerLossStorage();
            var images = new Dictionary<Inode, Inode>();
            foreach (var (name, inode) in _durableNames)
            {
                if (!images.TryGetValue(inode, out var image))
                {
                    var bytes = Survivor(inode, rng);
                    images[inode] = image = new Inode { Durable = bytes, Current = (byte[])bytes.Clone() };
                }
                crashed._names[name] = image;
                crashed._durableNames[name] = image;
            }
            return crashed;
        }
    }

    /// <summary>Writes to the file since its last barrier.</summary>
    public int PendingWrites(string path) { lock (_lock) return _names[path].Pending.Count(p => p.Data is not null); }

    /// <summary>A crash image where exactly the chosen later writes survive, whole: keep(path, n) for the n-th write since the barrier.</summary>
    public PowerLossStorage CrashKeeping(Func<string, int, bool> keep)
    {
        lock (_lock)
        {
            var crashed = new PowerLossStorage();
            foreach (var (name, inode) in _durableNames)
            {
                var bytes = (byte[])inode.Durable.Clone();
                int n = 0;
                foreach (var (offset, data, length) in inode.Pending)
                {
                    if (data is null) { Array.Resize(ref bytes, (int)length); continue; }
                    if (!keep(name, n++)) continue;
                    if (bytes.Length < offset + data.Length) Array.Resize(ref bytes, (int)(offset + data.Length));
                    data.CopyTo(bytes, offset);
                }
                var image = new Inode { Durable = bytes, Current = (byte[])bytes.Clone() };
                crashed._names[name] = image;
                crashed._durableNames[name] = image;
            }
            return crashed;
        }
    }

    private static byte[] Survivor(Inode inode, Random rng)
    {
        var bytes = (byte[])inode.Durable.Clone();
        var survivors = inode.Pending.Where(_ => rng.Next(2) == 0).ToList();
        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(survivors));
        foreach (var (offset, data, length) in survivors)
        {
            if (data is null) { Array.Resize(ref bytes, (int)length); continue; }
            // A write may survive in part: each 512-byte sector of the file it touches lands or not.
            long start = offset;
            while (start < offset + data.Length)
            {
                long sectorEnd = Math.Min(offset + data.Length, (start / SectorSize + 1) * SectorSize);
                if (rng.Next(4) != 0)
                {
                    if (bytes.Length < sectorEnd) Array.Resize(ref bytes, (int)sectorEnd);
                    Array.Copy(data, start - offset, bytes, start, sectorEnd - start);
                }
                start = sectorEnd;
            }
        }
        return bytes;
    }

    private void Count(StorageOp op, string path)
    {
        int errno = Fault?.Invoke(op, path) ?? 0;
        if (errno != 0) throw new StorageException($"simulated {op} failure on {path}", errno);
        Operations++;
        if (_crashPoints.Remove(Operations, out var point)) point.Taken(Crash(point.Rng));
    }

    public bool Exists(string path) { lock (_lock) return _names.ContainsKey(path); }

    public IStorageFile Open(string path, StorageAccess access)
    {
        lock (_lock)
        {
            if (!_names.TryGetValue(path, out var inode)) throw new StorageException($"cannot open {path}: no such file", 2);
            return new File(this, path, inode, access == StorageAccess.Read);
        }
    }

    /// <summary>A device is a file here that must already exist (see <see cref="Replace"/>).</summary>
    public IStorageFile OpenDevice(string path, StorageAccess access) => Open(path, access);

    public IStorageFile Create(string path)
    {
        lock (_lock)
        {
            if (_names.ContainsKey(path)) throw new StorageException($"cannot create {path}: exists", 17);
            Count(StorageOp.Create, path);
            var inode = new Inode();
            _names[path] = inode;
            return new File(this, path, inode, readOnly: false);
        }
    }

    public void Delete(string path) { lock (_lock) _names.Remove(path); }

    public void Rename(string from, string to)
    {
        lock (_lock)
        {
            if (!_names.Remove(from, out var inode)) throw new StorageException($"cannot rename {from}: no such file", 2);
            _names[to] = inode;
        }
    }

    public void SyncFolder(string folder)
    {
        lock (_lock)
        {
            Count(StorageOp.SyncFolder, folder);
            foreach (var name in _durableNames.Keys.Where(n => Path.GetDirectoryName(n) == folder).ToList()) _durableNames.Remove(name);
            foreach (var (name, inode) in _names.Where(n => Path.GetDirectoryName(n.Key) == folder)) _durableNames[name] = inode;
        }
    }

    /// <summary>The current bytes of a file (what a reader sees now), for tests that inspect or damage files.</summary>
    public byte[] Contents(string path) { lock (_lock) return (byte[])_names[path].Current.Clone(); }

    public void Replace(string path, byte[] bytes)
    {
        lock (_lock)
        {
            var inode = _names.TryGetValue(path, out var i) ? i : _names[path] = new Inode();
            inode.Current = (byte[])bytes.Clone();
            inode.Durable = (byte[])bytes.Clone();
            inode.Pending.Clear();
            _durableNames[path] = inode;
        }
    }

    private sealed class File(PowerLossStorage storage, string path, Inode inode, bool readOnly) : IStorageFile
    {
        public string Path { get; } = path;
        public bool ReadOnly { get; } = readOnly;

        public long Length { get { lock (storage._lock) return inode.Current.Length; } }

        public int Read(long offset, Span<byte> buffer)
        {
            storage.BeforeRead?.Invoke(Path, offset);
            lock (storage._lock)
            {
                int n = (int)Math.Clamp(inode.Current.Length - offset, 0, buffer.Length);
                if (n > 0) inode.Current.AsSpan((int)offset, n).CopyTo(buffer);   // past the end: nothing, like pread
                return n;
            }
        }

        public void Write(long offset, ReadOnlySpan<byte> data)
        {
            if (ReadOnly) throw new StorageException($"{Path} is read-only", 30);
            lock (storage._lock)
            {
                long end = offset + data.Length;
                if (storage.NoRoomToReserve && end > Math.Max(inode.Current.Length, inode.Reserved))
                    throw new StorageException($"write to {Path} failed: no space left on the simulated disk", 28);
                storage.Count(StorageOp.Write, Path);
                if (inode.Current.Length < end) Array.Resize(ref inode.Current, (int)end);
                data.CopyTo(inode.Current.AsSpan((int)offset));
                inode.Pending.Add((offset, data.ToArray(), 0));
            }
        }

        public void Flush()
        {
            if (ReadOnly) return;
            lock (storage._lock)
            {
                storage.Count(StorageOp.Flush, Path);
                inode.Durable = (byte[])inode.Current.Clone();
                inode.Pending.Clear();
            }
        }

        public void SetLength(long length)
        {
            if (ReadOnly) throw new StorageException($"{Path} is read-only", 30);
            lock (storage._lock)
            {
                storage.Count(StorageOp.SetLength, Path);
                Array.Resize(ref inode.Current, (int)length);
                inode.Pending.Add((0, null, length));
            }
        }

        public bool PunchHole(long offset, long length)
        {
            if (ReadOnly) return false;
            long end = Math.Min(offset + length, Length);
            if (end > offset) Write(offset, new byte[end - offset]);
            return true;
        }

        public bool Reserve(long length)
        {
            lock (storage._lock)
            {
                if (length <= inode.Reserved) return true;
                if (storage.NoRoomToReserve) return false;
                inode.Reserved = length;
                return true;
            }
        }

        /// <summary>Grows the file with zeros like a resize (durable only after a barrier); refused when the disk is full.</summary>
        public bool Preallocate(long offset, long length)
        {
            if (ReadOnly) return false;
            lock (storage._lock)
            {
                if (storage.NoRoomToReserve) return false;
                long end = offset + length;
                if (end <= inode.Current.Length) return true;
                try { storage.Count(StorageOp.SetLength, Path); }
                catch (StorageException) { return false; }   // an injected fault: fallocate failed, nothing changed
                Array.Resize(ref inode.Current, (int)end);
                inode.Pending.Add((0, null, end));
                return true;
            }
        }

        public bool TryLock(bool exclusive) => true;

        public void Dispose() { }
    }
}
