using System.Diagnostics;
using CowDisk.Engine;
using CowDisk.Engine.Images;

namespace CowDisk.Bench;

/// <summary>
/// 5. Snapshots beside qcow2 on the same data in one run: create time at two mapped sizes and after many
/// snapshots, the first write after a snapshot against a fresh allocating write, delete time against the bytes it
/// frees, and memory after discarding 1 TiB. cowdisk through the engine API and through the `cowdisk` command
/// (process start included, as for qemu-img); qcow2 through qemu-img and qemu-io (64 KiB clusters, default cache).
/// </summary>
internal sealed class SnapshotBench(string work, bool quick)
{
    private const long G = 1L << 30;
    private readonly List<string[]> _rows = new() { new[] { "5. snapshots", "cowdisk", "qcow2", "cowdisk / qcow2 time" } };

    private string P(string name) => Path.Combine(work, name);

    // --quick keeps every measurement but repeats less: 20 snapshots before the "after many" figures instead of 100,
    // and one round of the first-write comparison instead of three (the labels say so).
    private int ManySnapshots => quick ? 20 : 100;
    private int Rounds => quick ? 1 : 3;

    public string Run()
    {
        long big = quick ? 8 * G : 64 * G;
        foreach (long mapped in new[] { 1 * G, big }) CreateCost(mapped);
        FirstWriteAndDelete(quick ? 256L << 20 : 1 * G);
        DeleteCost(quick ? 64L << 20 : 256L << 20);
        DiscardMemory();
        int[] widths = Enumerable.Range(0, 4).Select(c => _rows.Max(r => r[c].Length)).ToArray();
        return string.Join('\n', _rows.Select(r => string.Join("  ", r.Select((cell, c) => c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c])))));
    }

    /// <summary>Every figure as numbers (NaN where a side has none), in table order, for --json.</summary>
    public List<(string What, double Ours, double Theirs, string Unit)> Figures { get; } = new();

    private void Row(string what, double ours, double theirs, string unit)
    {
        Figures.Add((what, ours, theirs, unit));
        _rows.Add([what, double.IsNaN(ours) ? "-" : $"{ours:0.###} {unit}", double.IsNaN(theirs) ? "-" : $"{theirs:0.###} {unit}",
            double.IsNaN(theirs) || double.IsNaN(ours) ? "" : $"{ours / theirs:0.00}x"]);
    }

    private static double Ms(Action a)
    {
        var sw = Stopwatch.StartNew();
        a();
        return sw.Elapsed.TotalMilliseconds;
    }

    private static void Exec(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {err.Trim()}");
    }

    private static double ExecMs(string file, params string[] args) => Ms(() => Exec(file, args));

    private static string Cowdisk => Machine.Cowdisk;

    private static double Median(List<double> xs) { xs.Sort(); return xs[xs.Count / 2]; }

    /// <summary>Create time with `mapped` bytes of the disk allocated (mappings only, as preallocation=metadata), then with <see cref="ManySnapshots"/> snapshots.</summary>
    private void CreateCost(long mapped)
    {
        string img = P("create.img"), q = P("create.qcow2");
        Console.Error.WriteLine($"[bench] 5: snapshot create with {mapped / G} GiB mapped");
        using (var image = CowImage.Create(img, new ImageCreateOptions { Size = mapped, ClusterSize = 64 * 1024 }))
        {
            image.PreallocateMetadata(0, mapped);
            var api = new List<double>();
            for (int i = 0; i < 5; i++) api.Add(Ms(() => image.CreateSnapshot($"api{i}")));
            int many = ManySnapshots;
            for (int i = 5; i < many - 1; i++) image.CreateSnapshot($"api{i}");
            var after = new List<double>();
            for (int i = many - 1; i < many + 4; i++) after.Add(Ms(() => image.CreateSnapshot($"api{i}")));
            Exec("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536,preallocation=metadata", q, mapped.ToString());
            var qemu = new List<double>();
            for (int i = 0; i < 5; i++) qemu.Add(ExecMs("qemu-img", "snapshot", "-c", $"s{i}", q));
            for (int i = 5; i < many - 1; i++) Exec("qemu-img", "snapshot", "-c", $"s{i}", q);
            var qemuAfter = new List<double>();
            for (int i = many - 1; i < many + 4; i++) qemuAfter.Add(ExecMs("qemu-img", "snapshot", "-c", $"s{i}", q));
            Row($"create, {mapped / G} GiB mapped (engine API; median of 5)", Median(api), double.NaN, "ms");
            Row($"create, {mapped / G} GiB mapped, after {many} snapshots (engine API)", Median(after), double.NaN, "ms");
            image.Dispose();
            var cli = new List<double>();
            for (int i = 0; i < 3; i++) cli.Add(ExecMs(Cowdisk, "snapshot", "create", img, $"cli{i}"));
            Row($"create, {mapped / G} GiB mapped, {many}+ snapshots: whole command (cowdisk / qemu-img)", Median(cli), Median(qemuAfter), "ms");
            Row($"qemu-img snapshot -c, {mapped / G} GiB mapped, first 5 (median)", double.NaN, Median(qemu), "ms");
        }
        File.Delete(q);
        foreach (var f in ImageFiles.For(img).All) File.Delete(f);
    }

    /// <summary>
    /// The first write to clusters a snapshot shares against an allocating write to fresh clusters, on the same image
    /// in the same state (this VM's disk slows down once a GiB or so is dirty, so a fresh image would flatter the
    /// first figure): region A is written, a snapshot taken, then region B (never written: allocating) and region A
    /// (shared: copy on write) are written, in alternating order over three rounds (one with --quick), medians. Sequential 1 MiB
    /// writes, then 8192 random 4 KiB writes (on a shared 64 KiB cluster cowdisk layers the 4 KiB, qcow2 copies the rest; on a
    /// fresh one the rest is zeros). Then the snapshot, which alone holds region A's old clusters, is deleted.
    /// </summary>
    private void FirstWriteAndDelete(long size)
    {
        Console.Error.WriteLine($"[bench] 5: first write after a snapshot, {size >> 20} MiB regions, {Rounds} round(s)");
        string img = P("cow.img"), q = P("cow.qcow2");
        var big = new byte[1 << 20];
        var small = new byte[4096];
        var rng = new Random(5);
        var offsets = Enumerable.Range(0, (int)(size / 4096)).Select(i => (long)i * 4096).OrderBy(_ => rng.Next()).Take(8192).ToArray();
        List<double> fresh = new(), cow = new(), delete = new(), fresh4 = new(), cow4 = new();
        List<double> qFresh = new(), qCow = new(), qDelete = new(), qFresh4 = new(), qCow4 = new();
        string freshScript = P("fresh.qemu"), cowScript = P("cow.qemu");
        File.WriteAllLines(freshScript, offsets.Select(o => $"write -P 0x11 {size + o} 4096").Append("flush"));
        File.WriteAllLines(cowScript, offsets.Select(o => $"write -P 0x11 {o} 4096").Append("flush"));
        for (int round = 0; round < Rounds; round++)
        {
            bool cowFirst = round % 2 == 1;
            void Sequential(CowImage image, long at, List<double> into) =>
                into.Add(Ms(() => { for (long o = 0; o < size; o += big.Length) image.Write(at + o, big); image.Flush(); }));
            void Random4K(CowImage image, long at, List<double> into) =>
                into.Add(Ms(() => { foreach (long o in offsets) image.Write(at + o, small); image.Flush(); }));
            using (var image = CowImage.Create(img, new ImageCreateOptions { Size = 2 * size, ClusterSize = 64 * 1024 }))
            {
                for (long o = 0; o < size; o += big.Length) image.Write(o, big);
                image.CreateSnapshot("s");
                if (cowFirst) { Sequential(image, 0, cow); Sequential(image, size, fresh); }
                else { Sequential(image, size, fresh); Sequential(image, 0, cow); }
                delete.Add(Ms(() => image.DeleteSnapshot("s")));
            }
            foreach (var f in ImageFiles.For(img).All) File.Delete(f);
            using (var image = CowImage.Create(img, new ImageCreateOptions { Size = 2 * size, ClusterSize = 64 * 1024 }))
            {
                for (long o = 0; o < size; o += big.Length) image.Write(o, big);
                image.CreateSnapshot("s");
                if (cowFirst) { Random4K(image, 0, cow4); Random4K(image, size, fresh4); }
                else { Random4K(image, size, fresh4); Random4K(image, 0, cow4); }
            }
            foreach (var f in ImageFiles.For(img).All) File.Delete(f);

            void QSequential(long at, List<double> into) => into.Add(ExecMs("qemu-io", "-f", "qcow2", "-c", $"write -P 0xa5 {at} {size}", "-c", "flush", q));
            void QRandom(string script, List<double> into) => into.Add(ExecMs("sh", "-c", $"qemu-io -f qcow2 {q} < {script} > /dev/null"));
            Exec("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", q, (2 * size).ToString());
            Exec("qemu-io", "-f", "qcow2", "-c", $"write -P 0x5a 0 {size}", q);
            Exec("qemu-img", "snapshot", "-c", "s", q);
            if (cowFirst) { QSequential(0, qCow); QSequential(size, qFresh); }
            else { QSequential(size, qFresh); QSequential(0, qCow); }
            qDelete.Add(ExecMs("qemu-img", "snapshot", "-d", "s", q));
            File.Delete(q);
            Exec("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", q, (2 * size).ToString());
            Exec("qemu-io", "-f", "qcow2", "-c", $"write -P 0x5a 0 {size}", q);
            Exec("qemu-img", "snapshot", "-c", "s", q);
            if (cowFirst) { QRandom(cowScript, qCow4); QRandom(freshScript, qFresh4); }
            else { QRandom(freshScript, qFresh4); QRandom(cowScript, qCow4); }
            File.Delete(q);
        }
        double mib = size / (double)(1 << 20);
        Row($"write {mib:0} MiB to fresh clusters, 1 MiB writes (MiB/s, median of {Rounds})", mib / (Median(fresh) / 1000), mib / (Median(qFresh) / 1000), "MiB/s");
        Row($"write {mib:0} MiB over clusters a snapshot shares (first write to each)", mib / (Median(cow) / 1000), mib / (Median(qCow) / 1000), "MiB/s");
        Row("  first write after a snapshot / fresh (time; target <= 1.3)", Median(cow) / Median(fresh), Median(qCow) / Median(qFresh), "x");
        Row("8192 random 4 KiB writes to fresh clusters (writes/s)", 8192 / (Median(fresh4) / 1000), 8192 / (Median(qFresh4) / 1000), "/s");
        Row("8192 random 4 KiB writes over shared clusters (first write to each)", 8192 / (Median(cow4) / 1000), 8192 / (Median(qCow4) / 1000), "/s");
        Row("  first 4 KiB write after a snapshot / fresh (time; target <= 1.3)", Median(cow4) / Median(fresh4), Median(qCow4) / Median(qFresh4), "x");
        Row($"delete the snapshot, freeing {mib:0} MiB (ms)", Median(delete), Median(qDelete), "ms");
    }

    /// <summary>Delete time at a second size, to show it follows what the snapshot alone holds.</summary>
    private void DeleteCost(long size)
    {
        Console.Error.WriteLine($"[bench] 5: delete freeing {size >> 20} MiB");
        string img = P("del.img"), q = P("del.qcow2");
        var big = new byte[1 << 20];
        double ours, theirs;
        using (var image = CowImage.Create(img, new ImageCreateOptions { Size = size, ClusterSize = 64 * 1024 }))
        {
            for (long o = 0; o < size; o += big.Length) image.Write(o, big);
            image.CreateSnapshot("s");
            for (long o = 0; o < size; o += big.Length) image.Write(o, big);
            image.Flush();
            ours = Ms(() => image.DeleteSnapshot("s"));
        }
        foreach (var f in ImageFiles.For(img).All) File.Delete(f);
        Exec("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", q, size.ToString());
        Exec("qemu-io", "-f", "qcow2", "-c", $"write -P 0x5a 0 {size}", q);
        Exec("qemu-img", "snapshot", "-c", "s", q);
        Exec("qemu-io", "-f", "qcow2", "-c", $"write -P 0xa5 0 {size}", q);
        theirs = ExecMs("qemu-img", "snapshot", "-d", "s", q);
        File.Delete(q);
        Row($"delete the snapshot, freeing {size >> 20} MiB (ms)", ours, theirs, "ms");
    }

    /// <summary>Managed memory and RSS of this process around discarding a whole 1 TiB image (with and without a base).</summary>
    private void DiscardMemory()
    {
        foreach (bool withBase in new[] { false, true })
        {
            Console.Error.WriteLine($"[bench] 5: discard 1 TiB{(withBase ? " over a base" : "")}");
            string img = P("discard.img"), raw = P("base.raw");
            if (withBase) using (var f = File.Create(raw)) f.SetLength(1L << 40);
            GC.Collect();
            long rssBefore = ProcessStats.Rss();
            double ms;
            using (var image = CowImage.Create(img, new ImageCreateOptions { Size = 1L << 40, ClusterSize = 64 * 1024, BackingPath = withBase ? "base.raw" : null }))
            {
                image.Write(0, new byte[1 << 20]);
                ms = Ms(() => { image.Discard(0, 1L << 40); image.Flush(); });
                GC.Collect();
                Row($"discard 1 TiB{(withBase ? " over a base" : "")}: RSS growth (MiB), time {ms:0} ms", (ProcessStats.Rss() - rssBefore) / (double)(1 << 20), double.NaN, "MiB");
            }
            foreach (var f in ImageFiles.For(img).All) File.Delete(f);
            File.Delete(raw);
        }
    }
}
