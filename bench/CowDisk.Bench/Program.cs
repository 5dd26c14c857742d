using System.Diagnostics;
using CowDisk.Bench;
using CowDisk.Engine;
using CowDisk.Engine.Images;
using LiteDB;
using Microsoft.Win32.SafeHandles;

// CowDisk benchmarks: map round trips through the ring, sequential and random writes against a plain file,
// and reopening an image with many extents. One run prints one table; see docs/BENCHMARKS.md.
//   dotnet run -c Release --project bench/CowDisk.Bench -- [--dir DIR] [--quick]

string? dir = null;
bool quick = false;
string only = "12345";
string? json = null;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--dir" when i + 1 < args.Length: dir = args[++i]; break;
        case "--quick": quick = true; break;
        case "--only" when i + 1 < args.Length: only = args[++i]; break;
        case "--json" when i + 1 < args.Length: json = Path.GetFullPath(args[++i]); break;
        case "-h" or "--help":
            Console.WriteLine("usage: CowDisk.Bench [--dir DIR] [--quick] [--only 1234] [--json FILE]\n  --dir DIR     make the scratch folder under DIR (default /var/tmp; use a real disk, not tmpfs)\n  --quick       smaller sizes, a few seconds per section\n  --only 13     run only the numbered sections (default all: 12345)\n  --json FILE   also write the machine facts and every row as JSON (for bench/run)");
            return 0;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]} (try --help)");
            return 2;
    }
}

string parent = Path.GetFullPath(dir ?? "/var/tmp");
if (!Directory.Exists(parent)) { Console.Error.WriteLine($"folder {parent} does not exist"); return 2; }
string work = Path.Combine(parent, $"cowdisk-bench-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
Directory.CreateDirectory(work);
void Cleanup()
{
    try { if (Directory.Exists(work)) Directory.Delete(work, recursive: true); }
    catch (Exception e) { Console.Error.WriteLine($"could not delete {work}: {e.Message}"); }
}
Console.CancelKeyPress += (_, _) => Cleanup();

try
{
    var sizes = quick ? Sizes.Quick : Sizes.Full;
    Console.WriteLine($"CowDisk benchmark ({(quick ? "--quick" : "full")} run)");
    foreach (var (key, value) in Machine.Facts(work)) Console.WriteLine($"  {key,-12} {value}");
    var (spinMedian, spinBest) = Machine.SpinMicros(160, 1);
    var (oldMedian, oldBest) = Machine.SpinMicros(64, 20);
    Console.WriteLine($"  {"spin",-12} the engine Doorbell's spin before it yields, 160 x Thread.SpinWait(1): median {spinMedian:0.0} us, best {spinBest:0.0} us (64 x SpinWait(20), its spin until 4f6fff3: {oldMedian:0} / {oldBest:0} us)");
    string fs = Machine.FileSystemType(work);
    if (fs is "tmpfs" or "ramfs" or "overlay")
        Console.WriteLine($"  WARNING: {work} is on {fs}, not a real disk; flush figures mean little (use --dir)");
    Console.WriteLine();

    var total = Stopwatch.StartNew();
    var bench = new Benchmarks(work, sizes);
    bench.Warmup();
    if (only.Contains('1')) bench.RingRoundTrips();
    if (only.Contains('2')) bench.SequentialWrites();
    if (only.Contains('3')) bench.RandomWrites();
    if (only.Contains('4')) bench.ManyExtents();
    var snapshotBench = only.Contains('5') ? new SnapshotBench(work, quick) : null;
    string? snapshots = snapshotBench?.Run();
    Console.WriteLine(bench.Report.Render());
    if (snapshots is not null) Console.WriteLine("\n" + snapshots);
    if (json is not null)
    {
        var doc = new Dictionary<string, object?>
        {
            ["quick"] = quick,
            ["machine"] = Machine.Facts(work).ToDictionary(f => f.Key, f => f.Value),
            ["rows"] = bench.Report.Rows().ToList(),
            ["snapshots"] = snapshotBench?.Figures.Select(f => new Dictionary<string, object?>
            {
                ["what"] = f.What, ["cowdisk"] = Finite(f.Ours), ["qcow2"] = Finite(f.Theirs), ["unit"] = f.Unit,
            }).ToList(),
        };
        File.WriteAllText(json, System.Text.Json.JsonSerializer.Serialize(doc, new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }
    Console.WriteLine(Benchmarks.Legend);
    Console.WriteLine($"total run time {total.Elapsed.TotalSeconds:0} s; load average at the end {Machine.LoadAverage()}; scratch folder {work} removed");
    return 0;
}
finally
{
    Cleanup();
}

static double? Finite(double x) => double.IsFinite(x) ? x : null;

internal sealed record Sizes
{
    public long RingRegion { get; init; }          // bytes written before the read phases
    public double TimedSeconds { get; init; }      // length of each time-bounded read phase
    public long SequentialBytes { get; init; }
    public int SequentialRounds { get; init; }
    public int RandomOps64K { get; init; }         // per phase
    public int RandomOps4K { get; init; }
    public int Extents { get; init; }
    public int OpenRepeats { get; init; }
    public int RingRounds { get; init; }           // interleaved rounds of section 1 (engine and plain in turn)

    public static readonly Sizes Full = new()
    {
        RingRegion = 1L << 30, TimedSeconds = 1.5, RingRounds = 3, SequentialBytes = 1L << 30, SequentialRounds = 2,
        RandomOps64K = 8192, RandomOps4K = 16384, Extents = 1_000_000, OpenRepeats = 3,
    };

    public static readonly Sizes Quick = new()
    {
        RingRegion = 256L << 20, TimedSeconds = 0.5, RingRounds = 1, SequentialBytes = 256L << 20, SequentialRounds = 1,
        RandomOps64K = 4096, RandomOps4K = 8192, Extents = 100_000, OpenRepeats = 1,
    };
}

internal sealed class Benchmarks(string work, Sizes sizes)
{
    private const int K4 = 4096, K64 = 64 * 1024, M1 = 1 << 20;
    private const int Threads = 4;

    public Report Report { get; } = new();
    private Measurement? _freshAllocating4K;   // section 3's 1-thread allocating row on a fresh 4K image, a baseline for section 4

    public const string Legend = """
        kind: engine = CowImage through the ring; plain = the same I/O with RandomAccess on a plain file in the same folder.
        rate: ops (or MB = 10^6 bytes) per second over the whole phase, including the final Flush()/fdatasync where "flush ms" shows one;
          "rate w/o flush" leaves the flush out. x base = engine rate / the rate of its baseline: the plain-file row of the same
          pattern just above it; for "allocating into the full image" the fresh-image row of section 3 (same writes, same cluster size).
        ring calls: CowImage.RingCalls made during the phase (map round trips + flush barriers); 0 = every lookup hit the mapping cache.
        p50/p99/max: per-op latency. cpu us/op: user+system CPU of the whole process (all threads) per op. csw/op: context switches per op.
        wr KiB/op: bytes the process handed to write(2) per op (data, zero fill, LiteDB). alloc B/op: managed bytes allocated per op (all threads).
        extents rows: ops = extents, rate = extents per second, per-op columns per extent.
        """;

    private string PathFor(string name) => Path.Combine(work, name);

    private static void DeleteImage(string path)
    {
        var files = ImageFiles.For(path);
        foreach (var f in new[] { files.DataPath, files.MetadataPath, files.MetadataLogPath }) File.Delete(f);
    }

    private static SafeFileHandle CreatePlain(string path, long length)
    {
        var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        if (length > 0) RandomAccess.SetLength(handle, length);
        return handle;
    }

    private static void FillSequential(Action<long, byte[]> write, long bytes)
    {
        var buffer = new byte[M1];
        new Random(7).NextBytes(buffer);
        for (long off = 0; off < bytes; off += M1) write(off, buffer);
    }

    /// <summary>Runs every job type briefly so the timed phases see tier-1 code (results are thrown away).</summary>
    public void Warmup()
    {
        Console.Error.WriteLine("[bench] warming up");
        string path = PathFor("warmup.img"), plainPath = PathFor("warmup.raw");
        var offsets = Offsets.DistinctBlocks(4096, 2048, K64, 1);
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 4096L * K64 }))
        using (var plain = CreatePlain(plainPath, 4096L * K64))
        {
            Runner.Run("w", "engine", 2, new EngineWrite(image, Offsets.Split(offsets, 2), K4), finish: image.Flush);
            Runner.Run("w", "engine", 2, new EngineWrite(image, Offsets.Split(offsets, 2), K4), finish: image.Flush);
            Runner.Run("w", "engine", 1, new EngineRead(image, Offsets.One(Offsets.Picks(offsets, 1024, 2)), K4, wrap: true), maxSeconds: 0.3);
            Runner.Run("w", "engine", 1, new EngineWrite(image, Offsets.One(Offsets.Sequential(64, M1, 2048L * K64)), M1), finish: image.Flush);
            Runner.Run("w", "plain", 2, new PlainWrite(plain, Offsets.Split(offsets, 2), K4), finish: () => Native.FDataSync(plain));
            Runner.Run("w", "plain", 1, new PlainRead(plain, Offsets.One(Offsets.Picks(offsets, 1024, 2)), K4, wrap: true), maxSeconds: 0.2);
            Runner.Run("w", "plain", 1, new PlainWrite(plain, Offsets.One(Offsets.Sequential(64, M1)), M1), finish: () => Native.FDataSync(plain));
        }
        using (var image = CowImage.Open(path, new ImageOpenOptions { Settings = new EngineSettings { MappingCache = false } }))
            Runner.Run("w", "engine", 1, new EngineRead(image, Offsets.One(Offsets.Picks(offsets, 1024, 2)), K4, wrap: true), maxSeconds: 0.3);
        DeleteImage(path);
        File.Delete(plainPath);
    }

    /// <summary>1. Map round trips: 4 KiB reads of allocated blocks, mapping cache off, then on (first touch and steady state).</summary>
    public void RingRoundTrips()
    {
        Report.Section($"1. map round trips: 4 KiB reads at block-aligned offsets of a {Machine.Size(sizes.RingRegion)} allocated region (64 KiB clusters, data in page cache; plain = pread of the same blocks of the image's data file); median of {sizes.RingRounds} interleaved round(s)");
        string path = PathFor("ring.img");
        long blocks = sizes.RingRegion / K64;
        var all = Offsets.Sequential(blocks, K64);
        // The plain rows pread the very blocks the engine reads: the image's data file at each block's mapped offset
        // (the issue's "plain pread of the same blocks"), so both read the same pages of the page cache.
        var physical = new long[blocks];
        string dataPath;
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = sizes.RingRegion * 2 }))
        {
            FillSequential((off, buf) => image.Write(off, buf), sizes.RingRegion);
            image.Flush();
            dataPath = image.Files.DataPath;
            foreach (var run in image.MapRange(0, sizes.RingRegion))
            {
                if (run.FileOffset is not { } at || run.File != dataPath) throw new InvalidOperationException($"block at {run.Start} is not in the data file ({run.Source})");
                for (long v = run.Start; v < run.Start + run.Length; v += K64) physical[v / K64] = at + (v - run.Start);
            }
        }
        long[][] Picks(int threads) => Enumerable.Range(0, threads).Select(t => Offsets.Picks(all, 1 << 16, 100 + t)).ToArray();
        long[][] PlainPicks(int threads) => Enumerable.Range(0, threads).Select(t => Offsets.Picks(physical, 1 << 16, 100 + t)).ToArray();
        var firstTouch = Offsets.Shuffled(all, 3);
        double secs = sizes.TimedSeconds;
        var rows = new List<Measurement>();

        // The engine and the plain file take turns, round after round, and each row is the median round: load from
        // other work on this machine moves every figure by 15-30 % over a minute, and a ratio between phases run
        // minutes apart measured that drift as much as the engine.
        var rounds = new Dictionary<string, List<Measurement>>();
        void Take(string key, Measurement m) => (rounds.TryGetValue(key, out var l) ? l : rounds[key] = new()).Add(m);
        var off = new EngineSettings { MappingCache = false };
        for (int round = 0; round < sizes.RingRounds; round++)
        {
            using (var image = CowImage.Open(path, new ImageOpenOptions { Settings = off }))
            {
                Take("off1", Runner.Run("read 4K, cache off", "engine", 1, new EngineRead(image, Picks(1), K4, wrap: true), maxSeconds: secs, ringCalls: () => image.RingCalls));
                Take("offN", Runner.Run("read 4K, cache off", "engine", Threads, new EngineRead(image, Picks(Threads), K4, wrap: true), maxSeconds: secs, ringCalls: () => image.RingCalls));
            }
            foreach (int threads in new[] { 1, Threads })
            {
                using var image = CowImage.Open(path, new ImageOpenOptions());   // a fresh, empty cache
                Take($"first{threads}", Runner.Run("read 4K, cache on, first touch", "engine", threads, new EngineRead(image, Offsets.Split(firstTouch, threads), K4, wrap: false), ringCalls: () => image.RingCalls));
                Take($"steady{threads}", Runner.Run("read 4K, cache on, steady", "engine", threads, new EngineRead(image, Picks(threads), K4, wrap: true), maxSeconds: secs, ringCalls: () => image.RingCalls));
            }
            using var plain = File.OpenHandle(dataPath, FileMode.Open, FileAccess.Read);
            Take("plain1", Runner.Run("read 4K", "plain", 1, new PlainRead(plain, PlainPicks(1), K4, wrap: true), maxSeconds: secs));
            Take("plainN", Runner.Run("read 4K", "plain", Threads, new PlainRead(plain, PlainPicks(Threads), K4, wrap: true), maxSeconds: secs));
        }
        Measurement Median(string key) => rounds[key].OrderBy(m => m.Rate).ElementAt(rounds[key].Count / 2);
        foreach (var key in new[] { "off1", "offN", "first1", "steady1", $"first{Threads}", $"steady{Threads}" })
            rows.Add(Report.Add(Median(key)));
        var p1 = Report.Add(Median("plain1"));
        var p4 = Report.Add(Median("plainN"));
        foreach (var r in rows) r.Baseline = r.Threads == 1 ? p1 : p4;
        DeleteImage(path);

        // Reference, no engine: the thread hand-offs of one map round trip, every waiter waiting like the engine's
        // Doorbell (64 x SpinWait(20), then sleep), or yielding, or only sleeping. 2 threads: caller and responder;
        // 3 threads: with a completion thread between them (the ring before commit 1c760bc).
        foreach (int threads in new[] { 2, 3 })
            foreach (var style in new[] { WaitStyle.DoorbellSpin, WaitStyle.Yield, WaitStyle.Sleep })
            {
                string what = style switch { WaitStyle.DoorbellSpin => "long spin (old doorbell)", WaitStyle.Yield => "yield x16", _ => "sleep only" };
                using var relay = new HandoffRelay(threads - 1, style);
                Report.Add(Runner.Run($"ref: {threads}-thread hand-off, {what}", "ref", 1, relay, maxSeconds: Math.Min(1, secs)));
            }
    }

    /// <summary>
    /// 2. Sequential 1 MiB writes to a new image vs a new plain file, each ending with a flush. Two rounds, the order
    /// swapped in the second; before them an untimed pass writes and deletes a file of the same size, because the first
    /// page-cache pages a VM touches in a while are much slower to fill (measured here: ~800 MB/s cold vs ~7 GB/s warm).
    /// </summary>
    public void SequentialWrites()
    {
        Report.Section($"2. sequential 1 MiB writes, {Machine.Size(sizes.SequentialBytes)} to a new file, final flush included (64 KiB clusters; round 2 runs the engine first)");
        string path = PathFor("seq.img"), plainPath = PathFor("seq.raw");
        var offsets = Offsets.One(Offsets.Sequential(sizes.SequentialBytes / M1, M1));
        using (var warm = CreatePlain(plainPath, 0))
        {
            FillSequential((off, buf) => RandomAccess.Write(warm, buf, off), sizes.SequentialBytes);
            Native.FDataSync(warm);
        }
        File.Delete(plainPath);

        for (int round = 1; round <= sizes.SequentialRounds; round++)
        {
            Measurement? plainRow = null, engineRow = null;
            void Plain()
            {
                Native.Sync();
                using (var plain = CreatePlain(plainPath, 0))
                    plainRow = Runner.Run($"write 1M sequential, round {round}", "plain", 1, new PlainWrite(plain, offsets, M1), "MB/s",
                        finish: () => Native.FDataSync(plain), bytesPerOp: M1);
                File.Delete(plainPath);
            }
            void Engine()
            {
                Native.Sync();
                using (var image = CowImage.Create(path, new ImageCreateOptions { Size = sizes.SequentialBytes }))
                    engineRow = Runner.Run($"write 1M sequential, round {round}", "engine", 1, new EngineWrite(image, offsets, M1), "MB/s",
                        ringCalls: () => image.RingCalls, finish: image.Flush, bytesPerOp: M1);
                DeleteImage(path);
            }
            if (round % 2 == 1) { Plain(); Engine(); } else { Engine(); Plain(); }
            Report.Add(plainRow!);
            Report.Add(engineRow!).Baseline = plainRow;
        }
    }

    /// <summary>3. Random 4 KiB writes: allocating (64 KiB and 4 KiB clusters) and overwriting, 1 and 4 threads, each beside a plain file.</summary>
    public void RandomWrites()
    {
        foreach (var (cluster, ops, virtualSize) in new[] { (K64, sizes.RandomOps64K, 16L << 30), (K4, sizes.RandomOps4K, 4L << 30) })
        {
            string cs = cluster == K64 ? "64K" : "4K";
            Report.Section($"3. random 4 KiB writes at block-aligned offsets, {cs} clusters, {ops:N0} distinct blocks per phase of a {Machine.Size(virtualSize)} disk, final flush included");
            string path = PathFor($"rand{cs}.img"), plainPath = PathFor($"rand{cs}.raw");
            var blocks = Offsets.DistinctBlocks(virtualSize / cluster, 2 * ops, cluster, 11);
            var setA = blocks[..ops];
            var setB = blocks[ops..];
            // Overwrite twice: the first pass follows the allocating writes, the second finds whatever the first left cached.
            var phases = new (string Name, long[][] Offsets)[]
            {
                ("write 4K random, allocating", Offsets.One(setA)),
                ("write 4K random, allocating", Offsets.Split(setB, Threads)),
                ("write 4K random, overwrite 1st", Offsets.One(Offsets.Shuffled(setA, 12))),
                ("write 4K random, overwrite 1st", Offsets.Split(Offsets.Shuffled(setB, 13), Threads)),
                ("write 4K random, overwrite 2nd", Offsets.One(Offsets.Shuffled(setA, 14))),
                ("write 4K random, overwrite 2nd", Offsets.Split(Offsets.Shuffled(setB, 15), Threads)),
            };
            using (var plain = CreatePlain(plainPath, virtualSize))
            using (var image = CowImage.Create(path, new ImageCreateOptions { Size = virtualSize, ClusterSize = cluster }))
            {
                foreach (var (name, offsets) in phases)
                {
                    Native.Sync();
                    var p = Report.Add(Runner.Run($"{name} {cs}", "plain", offsets.Length, new PlainWrite(plain, offsets, K4),
                        finish: () => Native.FDataSync(plain)));
                    Native.Sync();
                    var e = Report.Add(Runner.Run($"{name} {cs}", "engine", offsets.Length, new EngineWrite(image, offsets, K4),
                        ringCalls: () => image.RingCalls, finish: image.Flush));
                    e.Baseline = p;
                    if (cluster == K4 && offsets.Length == 1 && name.EndsWith("allocating", StringComparison.Ordinal)) _freshAllocating4K = e;
                }
            }
            DeleteImage(path);
            File.Delete(plainPath);   // slow on a "discard" mount: every scattered 4 KiB extent is trimmed
        }
    }

    /// <summary>4. Build an image of N one-block extents (4 KiB clusters, every other block written), then time reopening it.</summary>
    public void ManyExtents()
    {
        int n = sizes.Extents;
        Report.Section($"4. reopen an image holding {n:N0} extents (4 KiB clusters, a 4 KiB write to every other block; warm page cache)");
        string path = PathFor("extents.img");
        var offsets = Offsets.Sequential(n, 2L * K4);
        // Built as fast as the engine allows: group commit left to the final flush (section 3 measures the default
        // commit policy), 16 writers (at 829edc1, 1 to 32 writers build within 15% of each other; 16 hedges against a
        // busy machine, where a lone caller falls out of the ring's spin window).
        const int buildThreads = 16;
        var buildSettings = new EngineSettings { CommitIntervalMs = 600_000, CommitMaxDirtyChunks = 1 << 20 };
        var image = CowImage.Create(path, new ImageCreateOptions { Size = 2L * n * K4, ClusterSize = K4 }, buildSettings);
        Native.Sync();
        Report.Add(Runner.Run($"build: 4K write to every other block, commit at flush", "engine", buildThreads,
            new EngineWrite(image, Offsets.Split(offsets, buildThreads), K4), ringCalls: () => image.RingCalls, finish: image.Flush));
        Report.Add(Runner.Once("close after build (Dispose)", () => { image.Dispose(); return n; }, "ext/s"));

        // Memory of an open: this process's VmRSS after the open (it includes what the build left behind), and the
        // managed heap the open image keeps alive (after a full GC, minus before). Measured outside the open's timing.
        Measurement Open(string name, bool readOnly, out CowImage image)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long heap0 = GC.GetTotalMemory(forceFullCollection: true);
            CowImage? opened = null;
            var row = Runner.Once(name, () => { opened = CowImage.Open(path, new ImageOpenOptions { ReadOnly = readOnly }); return opened.ExtentsLoaded; }, "ext/s");
            row.RssMiB = ProcessStats.Rss() / (double)M1;
            row.HeapRetainedMiB = (GC.GetTotalMemory(forceFullCollection: true) - heap0) / (double)M1;
            image = opened!;
            return Report.Add(row);
        }
        for (int r = 0; r < sizes.OpenRepeats; r++)
        {
            var row = Open($"open read-write{(sizes.OpenRepeats > 1 ? $" #{r + 1}" : "")}", readOnly: false, out var opened);
            if (row.Ops != n) Console.Error.WriteLine($"[bench] WARNING: open loaded {row.Ops} extents, expected {n}");
            Report.Add(Runner.Once("close (Dispose)", () => { opened.Dispose(); return row.Ops; }, "ext/s"));
        }
        Open("open read-only", readOnly: true, out var ro);
        ro.Dispose();
        // What opening it costs a process of its own: `cowdisk io IMAGE read 0 4096` (start, open, read, exit) under
        // /usr/bin/time, its peak RSS beside the same command on an empty image of the same size.
        string empty = PathFor("empty.img");
        using (CowImage.Create(empty, new ImageCreateOptions { Size = 2L * n * K4, ClusterSize = K4 })) { }
        foreach (var (what, img) in new[] { ("a new process: cowdisk io read 4 KiB of an empty image", empty), ($"a new process: cowdisk io read 4 KiB of this image", path) })
        {
            long? peak = null;
            var row = Runner.Once(what, () => { peak = Machine.PeakRss(Machine.Cowdisk, "io", img, "read", "0", "4096"); return n; }, "ext/s");
            if (peak is null) { Console.Error.WriteLine($"[bench] {what}: skipped (no /usr/bin/time, no cowdisk at {Machine.Cowdisk}, or the command failed)"); continue; }
            row.RssMiB = peak.Value / (double)M1;
            Report.Add(row);
        }
        DeleteImage(empty);
        // What LiteDB alone costs: the same scan the store does at open, without decoding into the table.
        string meta = ImageFiles.For(path).MetadataPath;
        Report.Add(Runner.Once("LiteDB FindAll of the map chunks alone", () =>
        {
            using var db = new LiteDatabase(new ConnectionString { Filename = meta, Connection = ConnectionType.Direct, ReadOnly = true });
            long extents = 0;
            foreach (var doc in db.GetCollection("chunks").FindAll()) extents += doc["x"].AsBinary.Length / CowDisk.Format.Mapping.ExtentRecord.Size;
            return extents;
        }, "ext/s"));

        // Allocation on a big data file: the same random allocating 4K writes as section 3, now into the holes (odd blocks)
        // of this image, whose data file already holds n clusters with no free space below its end.
        using (var full = CowImage.Open(path, new ImageOpenOptions()))
        {
            var holes = Offsets.DistinctBlocks(n, Math.Min(sizes.RandomOps4K, n), 2L * K4, 21).Select(o => o + K4).ToArray();
            Native.Sync();
            Report.Add(Runner.Run($"write 4K random, allocating into the full image", "engine", 1, new EngineWrite(full, Offsets.One(holes), K4),
                ringCalls: () => full.RingCalls, finish: full.Flush)).Baseline = _freshAllocating4K;
        }
        DeleteImage(path);
    }
}
