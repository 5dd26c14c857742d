using CowDisk.Engine.Devices;
using CowDisk.Engine.Native;
using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// Serves an <see cref="IBlockDevice"/> as the single file of a FUSE mount, speaking the kernel protocol over
/// /dev/fuse itself. Several worker threads read requests from the one descriptor; the kernel hands each
/// request to exactly one of them. The server does not own the device.
/// </summary>
public sealed class FuseServer : IDisposable
{
    public const uint ProtocolMajor = 7;
    /// <summary>7.28 (Linux 4.20) brought FUSE_MAX_PAGES, which large requests need.</summary>
    public const uint MinimumProtocolMinor = 28;
    /// <summary>The newest protocol minor whose layouts this server knows.</summary>
    public const uint SupportedProtocolMinor = 38;
    private const string FuseDevicePath = "/dev/fuse";
    private const int PageSize = 4096;
    private static readonly TimeSpan InitTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan UnmountRetryTime = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan WorkerExitTimeout = TimeSpan.FromSeconds(5);

    private const FuseInitFlags WantedInitFlags =
        FuseInitFlags.AsyncRead | FuseInitFlags.BigWrites | FuseInitFlags.AsyncDio | FuseInitFlags.MaxPages;
    private static readonly TimeSpan RegisterTimeout = TimeSpan.FromSeconds(5);

    private readonly FuseServerOptions _options;
    private readonly List<(Thread Thread, FuseWorker Worker)> _workers = [];
    private readonly List<(Thread Thread, FuseUringQueue Queue)> _queues = [];
    private FuseUringPool? _uringPool;
    private FuseUringBulk? _uringBulk;
    private CpuIdlePolling? _idlePolling;
    private readonly FuseRequestHandler _handler;
    private readonly ManualResetEventSlim _initDone = new();
    private int _fd = -1;
    private readonly List<int> _clones = [];
    private bool _mounted;
    private bool _turnedUringOn;
    private string? _uringProbeFailure;   // why this process cannot set up a ring (io_uring disabled, seccomp): not offered at INIT
    private string? _connectionId;

    internal IBlockDevice Device { get; }
    internal FuseDiskTree Tree { get; }
    internal bool ReadOnly { get; }
    internal FuseOpenReplyFlags OpenReplyFlags => _options.OpenFlags;

    /// <summary>What INIT settled on; null until the kernel has sent INIT (or if it was refused).</summary>
    public FuseInitOut? Negotiated { get; private set; }
    /// <summary>This server turned the kernel's FUSE io_uring switch on (and turns it off when it stops).</summary>
    public bool TurnedOnIoUring => _turnedUringOn;
    /// <summary>How requests arrive once started: "io-uring" or "dev-fuse".</summary>
    public string ActiveTransport { get; private set; } = "dev-fuse";
    /// <summary>Why io_uring was asked for and /dev/fuse serves instead (null: it was not asked for, or it serves).</summary>
    public string? IoUringFallback { get; private set; }
    /// <summary>The kernel's protocol version, as "7.x".</summary>
    public string? KernelProtocol { get; private set; }
    public string MountPoint { get; }
    /// <summary>Full path of the file that reads and writes the device.</summary>
    public string FilePath => Path.Combine(MountPoint, _options.FileName);

    public FuseServer(IBlockDevice device, FuseServerOptions options)
    {
        if (options.WorkerThreads < 1) throw new ArgumentException("a FUSE server needs at least one worker thread");
        if (options.MaxWrite < PageSize || options.MaxWrite % PageSize != 0)
            throw new ArgumentException($"max write must be a positive multiple of {PageSize} bytes");
        Device = device;
        _options = options;
        MountPoint = Path.GetFullPath(options.MountPoint);
        ReadOnly = (device.Capabilities & BlockDeviceCapabilities.ReadOnly) != 0;
        Tree = new FuseDiskTree(options.FileName, device.Size, ReadOnly);
        _handler = new FuseRequestHandler(this);
    }

    internal void Log(string message) => _options.Log(message);

    /// <summary>Opens /dev/fuse, mounts, starts the workers and waits until the kernel's INIT is answered.</summary>
    public void Start()
    {
        if (!File.Exists(FuseDevicePath)) throw new FuseUnavailableException($"no {FuseDevicePath} (load the fuse module: modprobe fuse)");
        _fd = PosixFile.TryOpen(FuseDevicePath, PosixFile.O_RDWR);
        if (_fd < 0) throw new FuseUnavailableException($"cannot open {FuseDevicePath}: {Errno.Describe(-_fd)}");

        if (_options.Transport == FuseTransport.IoUring)
        {
            // A connection that takes io_uring at INIT holds every request until all its queues have registered, so
            // /dev/fuse cannot take over after INIT: whether this process may set up rings is known before offering.
            _uringProbeFailure = _options.IoUringFailThread == "probe" ? "failing the ring probe, as asked (a test)" : FuseUringQueue.ProbeRing();
            if (_uringProbeFailure is not null && _options.RequireIoUring)
                throw new FuseUnavailableException($"FUSE over io_uring is not available: {_uringProbeFailure}");
            // Read at INIT: on before the mount, or the kernel will not offer io_uring to this connection.
            if (_uringProbeFailure is null)
            {
                _turnedUringOn = FuseUringSwitch.TurnOn(Log);
                if (_turnedUringOn) _options.IoUringSwitchTurnedOn?.Invoke();
                if (_options.IoUringHangAfterSwitch) Thread.Sleep(Timeout.Infinite);
            }
        }
        // A mount left by a killed daemon goes first: a dead FUSE root cannot even be stat()ed (ENOTCONN).
        if (Mount.IsMountPoint(MountPoint)) Mount.TryUnmount(MountPoint, lazy: true);
        Directory.CreateDirectory(MountPoint);
        // rootmode is octal S_IFDIR; default_permissions makes the kernel enforce the 0600 mode we report.
        string data = $"fd={_fd},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions";
        try
        {
            Mount.Attach(_options.SourceName, MountPoint, "fuse.cowdisk", Mount.MS_NOSUID | Mount.MS_NODEV | Mount.MS_NOEXEC, data);
        }
        catch (IOException error)
        {
            throw new FuseUnavailableException(error.Message);
        }
        _mounted = true;
        _connectionId = Mount.DeviceNumberOf(MountPoint)?.Minor.ToString();

        var fds = new int[_options.WorkerThreads];
        for (int i = 0; i < fds.Length; i++)
        {
            // Each worker its own clone of the session's descriptor (one processing queue each, no contention on
            // one); the session's own goes to the first. A kernel that cannot clone shares the one.
            int fd = i == 0 ? _fd : FuseDevice.Clone(_fd);
            if (fd < 0)
            {
                if (i == 1) Log($"fuse: cannot clone {FuseDevicePath} ({Errno.Describe(-fd)}); workers share one descriptor");
                fd = _fd;
            }
            else if (fd != _fd) _clones.Add(fd);
            fds[i] = fd;
        }
        // The first worker polls, over /dev/fuse only and only on a descriptor of its own (see FuseWorker).
        bool firstPolls = _options.Transport == FuseTransport.DevFuse && fds.Skip(1).All(fd => fd != _fd);
        Polls = firstPolls && _options.PollMicroseconds > 0;
        if (!firstPolls && _options.Transport == FuseTransport.DevFuse && _options.PollMicroseconds > 0)
            Log("fuse: no polling worker: the workers share one /dev/fuse descriptor");
        for (int i = 0; i < fds.Length; i++)
        {
            int fd = fds[i];
            var worker = new FuseWorker(this, _handler, fd, _options.MaxWrite, i == 0 && firstPolls ? _options.PollMicroseconds : 0);
            var thread = new Thread(worker.Run) { IsBackground = true, Name = $"fuse-worker-{i}" };
            _workers.Add((thread, worker));
            thread.Start();
        }
        if (!_initDone.Wait(InitTimeout)) throw new IOException("the kernel sent no FUSE INIT after mounting");
        if (Negotiated is null) throw new IOException($"FUSE INIT failed: kernel protocol {KernelProtocol} is not supported");
        if (_options.Transport == FuseTransport.IoUring) StartIoUring();
    }

    /// <summary>
    /// After INIT: the queue threads of every possible CPU register their entries; the kernel moves to the rings
    /// once every queue has an entry. Where INIT did not choose io_uring (no switch, no offer, no ring for this
    /// process) /dev/fuse serves, with a notice; where it did, any failure ends the connection and the attach fails
    /// instead of leaving requests held for rings nobody serves.
    /// </summary>
    private void StartIoUring()
    {
        bool chosen = (Negotiated!.Value.Flags2 & (uint)FuseInitFlags2.OverIoUring) != 0;
        string? why = chosen ? null
            : _uringProbeFailure ?? FuseUringSwitch.Unavailable() ?? "the kernel did not offer FUSE over io_uring at INIT";
        int queues = 0;
        if (why is null)
        {
            queues = ThreadAffinity.PossibleCpus();
            _uringPool = new FuseUringPool(_options.WorkerThreads);
            // Serving data in place, two threads share each queue's entries: the loop device's one worker makes
            // nearly every request on one CPU, so one thread would serve them all in turn (4 KiB random reads at
            // QD32: 172-185k IOPS against 137-147k). With the pool serving, one thread per queue only hands over.
            int threadsPerQueue = Math.Min(_options.IoUringServeDataInline ? 2 : 1, Math.Max(1, _options.IoUringEntries));
            for (int q = 0; q < queues; q++)
                for (int t = 0; t < threadsPerQueue; t++)
                {
                    int entries = _options.IoUringEntries / threadsPerQueue + (t == 0 ? _options.IoUringEntries % threadsPerQueue : 0);
                    var queue = new FuseUringQueue(this, _handler, _uringPool, _fd, (ushort)q, Math.Max(1, entries), (int)Negotiated.Value.MaxWrite,
                        _options.IoUringServeDataInline, failBeforeRegistering: _options.IoUringFailThread == $"{q}.{t}",
                        pollMicroseconds: _options.PollMicroseconds) { Index = _queues.Count };
                    // Linux keeps 15 characters of a thread's name: "fuse-q" leaves room for any CPU number.
                    _queues.Add((new Thread(queue.Run) { IsBackground = true, Name = $"fuse-q{q}.{t}" }, queue));
                }
            StartBulk();
            // What the /dev/fuse poller does for its transport (see CpuIdlePolling), with its window.
            if (_options.PollMicroseconds > 0)
            {
                _idlePolling = CpuIdlePolling.TryStart(_options.PollMicroseconds, "fuse-idle-poll", out string? noPolling);
                if (_idlePolling is null) Log($"fuse: idle CPUs will halt between requests ({noPolling})");
                foreach (var (_, queue) in _queues) queue.IdlePolling = _idlePolling;
            }
            foreach (var (thread, _) in _queues) thread.Start();
            // Every thread's outcome, not only up to the first failure: one that registered later may still have
            // moved the kernel to the rings.
            foreach (var (_, queue) in _queues)
            {
                string? outcome = queue.WaitRegistered(RegisterTimeout);
                why ??= outcome;
            }
        }
        if (why is null)
        {
            ActiveTransport = "io-uring";
            Log($"fuse: serving through io_uring: {queues} queues, {_queues.Count} queue threads" +
                (_uringBulk is null ? "" : $", {_uringBulk.Count} bulk workers"));
            return;
        }
        // Once INIT has chosen io_uring, /dev/fuse cannot serve this connection: the kernel holds every new request
        // until all queues have registered (seen here: an attach whose queue threads could not set up their rings
        // waited forever on its first request). So any failure now ends the connection, and the attach fails.
        StopIoUring();
        if (chosen)
        {
            AbortConnection();
            throw new FuseUnavailableException($"FUSE over io_uring failed after INIT chose it ({why}); the connection was ended");
        }
        if (_options.RequireIoUring) throw new FuseUnavailableException($"FUSE over io_uring is not available: {why}");
        IoUringFallback = why;
        Log($"fuse: FUSE over io_uring is not available ({why}); serving through /dev/fuse");
    }

    /// <summary>The bulk workers (big READs and WRITEs) if their rings can be had; else those go to the pool.</summary>
    private void StartBulk()
    {
        // Only with the page cache on: with O_DIRECT big reads wait on the disk, and a worker that keeps its entries
        // serves them one after another where the pool serves them side by side (1 MiB reads QD8: 0.63x /dev/fuse
        // against 0.71x through the pool).
        int workers = _options.IoUringBulkWorkers ?? _options.WorkerThreads;
        if (workers < 1 || !_options.IoUringServeDataInline) return;
        try
        {
            _uringBulk = new FuseUringBulk(this, _queues.Select(q => q.Queue).ToList(), workers);
            foreach (var (_, queue) in _queues) queue.Bulk = _uringBulk;
        }
        catch (Exception e)
        {
            Log($"fuse: no io_uring bulk workers ({e.Message}); big requests go to the pool");
        }
    }

    private bool StopIoUring()
    {
        // Queue threads first, then the pool (its workers may still be writing answers into entries), then the bulk
        // workers (their rings hold entries), and only then the entries' memory. The connection has ended by now
        // (unmounted or aborted), so nothing still held is waited for. Nothing is freed while a thread may run.
        bool allStopped = true;
        foreach (var (_, queue) in _queues) queue.Stop();
        foreach (var (thread, _) in _queues) allStopped &= thread.Join(WorkerExitTimeout);
        if (_uringPool is not null)
        {
            if (!_uringPool.Stop(WorkerExitTimeout)) allStopped = false;
            else if (allStopped) _uringPool.Dispose();   // a queue thread still running may still post to it
            _uringPool = null;
        }
        if (_uringBulk is not null)
        {
            // Their rings hold entries (whose buffers are the queues'): closed before the buffers are freed.
            if (!_uringBulk.Stop(WorkerExitTimeout)) allStopped = false;
            else if (allStopped) _uringBulk.Dispose();
            _uringBulk = null;
        }
        // After the queue threads, which touch it.
        if (_idlePolling is not null && !_idlePolling.Stop())
            Log("fuse: the idle-polling thread did not stop; its CPU latency request stays until the daemon exits");
        _idlePolling = null;
        if (allStopped) foreach (var (_, queue) in _queues) queue.Dispose();   // else the buffers stay: someone may still be in them
        _queues.Clear();
        return allStopped;
    }

    internal FuseInitOut Negotiate(FuseInitIn init)
    {
        KernelProtocol = $"{init.Major}.{init.Minor}";
        int maxPages = _options.MaxWrite / PageSize;
        // FUSE over io_uring is a flags2 bit, which the kernel reads only with INIT_EXT.
        bool uring = _options.Transport == FuseTransport.IoUring && _uringProbeFailure is null && (init.Flags & FuseInitFlags.InitExt) != 0
                     && (init.Flags2 & (uint)FuseInitFlags2.OverIoUring) != 0;
        var flags = init.Flags & WantedInitFlags | (uring ? FuseInitFlags.InitExt : FuseInitFlags.None);
        return new FuseInitOut(ProtocolMajor, Math.Min(init.Minor, SupportedProtocolMinor), init.MaxReadahead,
            flags, _options.MaxBackground, (ushort)(_options.MaxBackground * 3 / 4),
            (uint)_options.MaxWrite, 1, (ushort)maxPages, uring ? (uint)FuseInitFlags2.OverIoUring : 0);
    }

    private long _sleeperStarts, _sleeperEnds;

    /// <summary>One worker polls (<see cref="FuseServerOptions.PollMicroseconds"/>); the others count what they serve.</summary>
    internal bool Polls { get; private set; }

    /// <summary>Requests the workers that do not poll have taken: the polling worker's measure of what it missed.</summary>
    internal long TakenBySleepers => Volatile.Read(ref _sleeperStarts);

    /// <summary>
    /// As many workers that do not poll are serving requests as there are CPUs: the load is parallel, and a spin
    /// would take a CPU from it. Fewer (an fsync beside QD1 reads) mostly wait on the disk: the poller goes on.
    /// </summary>
    internal bool LoadIsParallel
    {
        get
        {
            long ends = Volatile.Read(ref _sleeperEnds);   // first: every end read has its start counted by the next read
            return Volatile.Read(ref _sleeperStarts) - ends >= ParallelAt;
        }
    }

    /// <summary>Requests being served at once from which the load counts as parallel: one per CPU (the pollers stand down).</summary>
    internal static readonly int ParallelAt = Math.Max(1, Environment.ProcessorCount);

    internal void SleeperStarts() => Interlocked.Increment(ref _sleeperStarts);

    internal void SleeperEnds() => Interlocked.Increment(ref _sleeperEnds);

    internal void CompleteInit(FuseInitOut? negotiated)
    {
        Negotiated = negotiated;
        _initDone.Set();
    }

    /// <summary>
    /// Unmounts (lazily if the file is still open, then aborting the connection) and waits for the workers.
    /// Returns false if a worker did not stop; the device must then stay alive until the process exits.
    /// </summary>
    public bool Stop()
    {
        if (_mounted)
        {
            _mounted = false;
            if (!UnmountWithRetry())
            {
                Log($"fuse: {MountPoint} is busy; unmounting lazily and aborting the connection");
                Mount.TryUnmount(MountPoint, lazy: true);
                AbortConnection();
            }
        }
        bool allStopped = StopIoUring();
        foreach (var (thread, worker) in _workers)
        {
            if (thread.Join(WorkerExitTimeout)) worker.Dispose();
            else allStopped = false; // its buffers stay allocated: it may still be inside read(2)
        }
        _workers.Clear();
        if (allStopped && _fd >= 0)
        {
            foreach (int clone in _clones) PosixFile.Close(clone);
            _clones.Clear();
            PosixFile.Close(_fd);
            _fd = -1;
        }
        try { Directory.Delete(MountPoint); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        if (_turnedUringOn)
        {
            _turnedUringOn = false;
            FuseUringSwitch.TurnOff(Log);   // ours to undo; connections already on io_uring keep it
        }
        return allStopped;
    }

    private bool UnmountWithRetry()
    {
        long deadline = Environment.TickCount64 + (long)UnmountRetryTime.TotalMilliseconds;
        while (true)
        {
            int errno = Mount.TryUnmount(MountPoint, lazy: false);
            if (errno == 0 || errno == Errno.EINVAL) return true;
            if (errno != Errno.EBUSY || Environment.TickCount64 > deadline) return false;
            Thread.Sleep(50);
        }
    }

    /// <summary>Ends a lazily unmounted connection whose file someone still holds, through fusectl.</summary>
    internal void AbortConnection()
    {
        const string connections = "/sys/fs/fuse/connections";
        if (_connectionId is null || !Directory.Exists(connections)) return;
        try
        {
            if (!Directory.EnumerateFileSystemEntries(connections).Any())
                Mount.Attach("fusectl", connections, "fusectl", 0, "");
            File.WriteAllText(Path.Combine(connections, _connectionId, "abort"), "1");
        }
        catch (IOException error) { Log($"fuse: cannot abort connection {_connectionId}: {error.Message}"); }
    }

    public void Dispose()
    {
        Stop();
        _initDone.Dispose();
    }
}
