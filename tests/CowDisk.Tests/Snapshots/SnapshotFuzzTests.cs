using System.Reflection;
using CowDisk.Engine;
using CowDisk.Engine.Images;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Snapshots;
using CowDisk.Tests.Engine;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Snapshots;

public class SnapshotFuzzTests(ITestOutputHelper log)
{
    internal static History HistoryOf(CowImage img)
    {
        var r = (MapResponder)typeof(CowImage).GetField("_responder", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(img)!;
        return r.History;
    }

    [Fact]
    public void Fuzz()
    {
        int seeds = int.Parse(Environment.GetEnvironmentVariable("COWDISK_SNAPSHOT_FUZZ_SEEDS") ?? "12");
        int start = int.Parse(Environment.GetEnvironmentVariable("COWDISK_SNAPSHOT_FUZZ_START") ?? "1");
        var failures = new List<string>();
        for (int seed = start; seed < start + seeds; seed++)
        {
            var trace = new List<string>();
            try { RunOne(seed, trace); }
            catch (Exception e)
            {
                failures.Add($"seed {seed}: {e.GetType().Name}: {e.Message}\n  trace: {string.Join(" ", trace)}");
                log.WriteLine(failures[^1]);
                if (failures.Count >= 3) break;
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    private static void RunOne(int seed, List<string> trace)
    {
        var rnd = new Random(seed);
        const int cs = 4096;
        long[] sizes = [300, 700, 1100, 4096 + 700, 8192 + 100];
        long blocks = sizes[rnd.Next(sizes.Length)];
        long size = blocks * cs;
        bool hasBase = rnd.Next(3) == 0;
        bool cache = rnd.Next(2) == 0;
        using var dir = new TempDir();
        string path = dir.File("d.img");
        var model = new byte[size];
        string? basePath = null;
        if (hasBase)
        {
            basePath = dir.File("base.raw");
            var b = ModelRunner.Pattern((int)size, 0x33);
            File.WriteAllBytes(basePath, b);
            b.CopyTo(model, 0);
        }
        var settings = new EngineSettings { MappingCache = cache, CommitIntervalMs = 50, CommitMaxDirtyChunks = 2, JournalFoldEntries = 3 };
        trace.Add($"[blocks {blocks} base {hasBase} cache {cache}]");
        var img = CowImage.Create(path, new ImageCreateOptions { Size = size, ClusterSize = cs, BackingPath = basePath is null ? null : "base.raw" }, settings);
        var snaps = new List<(string Name, byte[] Frozen)>();
        int counter = 0;
        try
        {
            int nops = int.Parse(Environment.GetEnvironmentVariable("FUZZ_OPS") ?? "40") + rnd.Next(60);
            for (int i = 0; i < nops; i++)
            {
                int k = rnd.Next(100);
                (long off, int len) Range()
                {
                    long b0 = rnd.Next((int)blocks);
                    int nb = rnd.Next(10) == 0 ? rnd.Next(1, 1200) : rnd.Next(1, 20);
                    if (rnd.Next(8) == 0 && blocks > 4096) { b0 = 4096 * rnd.Next((int)(blocks / 4096)); nb = 4096 + rnd.Next(3) - 1; }
                    long off = b0 * cs + (rnd.Next(3) == 0 ? rnd.Next(cs) : 0);
                    long len = (long)nb * cs - (rnd.Next(3) == 0 ? rnd.Next(cs) : 0);
                    off = Math.Min(off, size - 1);
                    len = Math.Max(1, Math.Min(len, size - off));
                    return (off, (int)len);
                }
                if (k < 30)
                {
                    var (off, len) = Range();
                    var data = ModelRunner.Pattern(len, (byte)rnd.Next(1, 255));
                    img.Write(off, data);
                    data.CopyTo(model, off);
                    trace.Add($"W({off / cs}+{(len + cs - 1) / cs})");
                }
                else if (k < 40)
                {
                    var (off, len) = Range();
                    img.Discard(off, len);
                    Array.Clear(model, (int)off, len);
                    trace.Add($"D({off / cs}+{(len + cs - 1) / cs})");
                }
                else if (k < 48)
                {
                    var (off, len) = Range();
                    img.WriteZeroes(off, len);
                    Array.Clear(model, (int)off, len);
                    trace.Add($"Z({off / cs}+{(len + cs - 1) / cs})");
                }
                else if (k < 60)
                {
                    string name = $"s{++counter}";
                    img.CreateSnapshot(name);
                    snaps.Add((name, (byte[])model.Clone()));
                    trace.Add($"C({name})");
                }
                else if (k < 68 && snaps.Count > 0)
                {
                    int v = rnd.Next(snaps.Count);
                    img.DeleteSnapshot(snaps[v].Name);
                    trace.Add($"X({snaps[v].Name})");
                    snaps.RemoveAt(v);
                }
                else if (k < 76 && snaps.Count > 0)
                {
                    int v = rnd.Next(snaps.Count);
                    img.RevertSnapshot(snaps[v].Name);
                    snaps[v].Frozen.CopyTo(model, 0);
                    trace.Add($"R({snaps[v].Name})");
                }
                else if (k < 80) { img.Flush(); trace.Add("F"); }
                else if (k < 82 && !hasBase)
                {
                    var (off, len) = Range();
                    img.PreallocateMetadata(off, len);
                    trace.Add($"P({off / cs}+{(len + cs - 1) / cs})");
                }
                else if (k < 88)
                {
                    img.Dispose();
                    trace.Add("O");
                    Verify(path, snaps, settings);
                    img = CowImage.Open(path, new ImageOpenOptions { Settings = settings });
                }
                else
                {
                    var (off, len) = Range();
                    var buf = new byte[len];
                    img.Read(off, buf);
                    int d = model.AsSpan((int)off, len).CommonPrefixLength(buf);
                    if (d < len) throw new Exception($"live read at byte {off + d} differs");
                }
            }
            var all = new byte[size];
            img.Read(0, all);
            if (all.AsSpan().CommonPrefixLength(model) is var dd && dd < size) throw new Exception($"live differs at {dd}");
            img.CheckInvariants();
            img.Dispose();
            Verify(path, snaps, settings);
            // host-space leaks / corruption per check
            using (var ro = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Settings = settings }))
            {
                var points = snaps.Select(x => ((string?)x.Name, x.Frozen)).Append((null, model)).ToList();
                foreach (var (an, ac) in points)
                    foreach (var (bn, bc) in points)
                    {
                        var ranges = ro.Diff(an, bn);
                        var inDiff = new HashSet<long>();
                        foreach (var (o, l) in ranges) for (long q = o / cs; q < (o + l + cs - 1) / cs; q++) inDiff.Add(q);
                        for (long q = 0; q < blocks; q++)
                        {
                            int n = (int)Math.Min(cs, size - q * cs);
                            if (!ac.AsSpan((int)(q * cs), n).SequenceEqual(bc.AsSpan((int)(q * cs), n)) && !inDiff.Contains(q))
                                throw new Exception($"diff {an ?? "live"} {bn ?? "live"} misses block {q}");
                        }
                    }
                var rep = ro.Check(false);
                if (rep.Corruptions.Count > 0 || rep.LeakedClusters > 0)
                    throw new Exception($"check: {rep.Corruptions.Count} corruptions [{string.Join("; ", rep.Corruptions)}], {rep.LeakedClusters} leaks");
            }
            img = CowImage.Open(path, new ImageOpenOptions { Settings = settings });
            // Delete snapshots one by one: each frees exactly what list said it alone holds
            while (snaps.Count > 0)
            {
                var listed = img.ListSnapshots();
                int v = rnd.Next(snaps.Count);
                long excl = listed.Single(s => s.Name == snaps[v].Name).ExclusiveBytes / cs;
                long before = img.CheckInvariants().MappedClusters;
                img.DeleteSnapshot(snaps[v].Name);
                trace.Add($"X({snaps[v].Name})");
                snaps.RemoveAt(v);
                long after = img.CheckInvariants().MappedClusters;
                if (before - after != excl) throw new Exception($"delete freed {before - after} clusters, list said {excl} exclusive");
            }
            long live = img.AllocatedBytes() / cs;
            long mapped = img.CheckInvariants().MappedClusters;
            int dead = NonLiveDead(HistoryOf(img));
            if (mapped != live || dead != 0) throw new Exception($"after deleting all snapshots: {mapped} clusters held, {live} live, {dead} dead entries left (leak): {Dump(HistoryOf(img))}");
            img.Read(0, all);
            if (all.AsSpan().CommonPrefixLength(model) is var d2 && d2 < size) throw new Exception($"live differs at {d2} after deletes");
            img.Dispose();
            img = CowImage.Open(path, new ImageOpenOptions { Settings = settings });
            img.Read(0, all);
            if (all.AsSpan().CommonPrefixLength(model) is var d3 && d3 < size) throw new Exception($"live differs at {d3} after final reopen");
            img.CheckInvariants();
        }
        finally { img.Dispose(); }
    }

    internal static int NonLiveDead(History h)
    {
        var d = (System.Collections.IDictionary)typeof(History).GetField("_dead", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(h)!;
        int n = 0;
        foreach (System.Collections.DictionaryEntry kv in d)
            if (!h.IsLive((DeadKey)kv.Key, (DeadEntry)kv.Value!) || ((DeadEntry)kv.Value!).Deaths.Length > 0) n++;
        return n;
    }

    internal static string Dump(History h)
    {
        var d = (System.Collections.IDictionary)typeof(History).GetField("_dead", BindingFlags.NonPublic | BindingFlags.Instance)!.GetValue(h)!;
        var sb = new System.Text.StringBuilder();
        sb.Append($"head {h.Head} nodes [{string.Join(",", h.Tree.Nodes.Select(n => $"{n.Epoch}<-{n.Parent}"))}] ");
        int i = 0;
        foreach (System.Collections.DictionaryEntry kv in d)
        {
            var key = (DeadKey)kv.Key; var e = (DeadEntry)kv.Value!;
            if (h.IsLive(key, e) && e.Deaths.Length == 0) continue;
            sb.Append($"[{key.Block} b{key.Birth} {e.Source} c{e.Cluster} d({string.Join(",", e.Deaths)}) live={h.IsLive(key, e)}] ");
            if (++i > 12) break;
        }
        return sb.ToString();
    }

    private static void Verify(string path, List<(string Name, byte[] Frozen)> snaps, EngineSettings settings)
    {
        foreach (var (name, frozen) in snaps)
        {
            using var view = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true, Snapshot = name, Settings = settings });
            var all = new byte[frozen.Length];
            view.Read(0, all);
            int d = frozen.AsSpan().CommonPrefixLength(all);
            if (d < frozen.Length) throw new Exception($"snapshot {name} differs at byte {d} (block {d / 4096})");
        }
    }
}
