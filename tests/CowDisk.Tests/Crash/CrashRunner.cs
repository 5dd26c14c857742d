using CowDisk.Engine;
using CowDisk.Engine.Images;
using CowDisk.Tests.Engine;

namespace CowDisk.Tests.Crash;

/// <summary>
/// Runs a workload on an image over <see cref="PowerLossStorage"/>, takes crash images at the scenario's
/// operation numbers and at the end, and checks each against the crash contract (../shared/DESIGN.md §4):
/// the image opens with no manual step, its invariants hold, and every byte reads a version it had at or
/// after the last completed flush: acknowledged-and-flushed data survives; nothing reads another block's
/// data or freed bytes. Returns the number of crash images checked.
/// </summary>
public static class CrashRunner
{
    /// <summary>Writes covered by a completed flush, summed over every crash image checked (each one had to survive).</summary>
    public static long AcknowledgedWritesChecked;

    /// <param name="Operation">The storage operation the cut came before.</param>
    private sealed record CrashImage(PowerLossStorage Storage, int Step, long Operation);

    public static int Run(CrashScenario s)
    {
        // A first run counts the storage operations, so the cuts land inside the workload (timing may shift a few).
        var (created, total, _) = Workload(s, null);
        var rng = new Random(s.Seed);
        var points = s.CrashPoints.Select(p => created + 1 + (long)(p * (total - created - 1))).Distinct().ToArray();
        return Workload(s, (points, rng)).CheckedImages;
    }

    /// <summary>Cuts power before every storage operation of the workload in turn (each cut its own crash image).</summary>
    public static int RunEveryOperation(CrashScenario s)
    {
        var (created, total, _) = Workload(s, null);
        var points = Enumerable.Range(0, (int)(total - created + 8)).Select(i => created + 1 + i).ToArray();
        return Workload(s, (points, new Random(s.Seed))).CheckedImages;
    }

    private static (long Created, long Total, int CheckedImages) Workload(CrashScenario s, (long[] Points, Random Rng)? cuts)
    {
        using var dir = new TempDir();
        string path = dir.File("disk.img");
        var storage = new PowerLossStorage { Step = -1 };
        var rng = cuts?.Rng ?? new Random(s.Seed);
        var crashes = new List<CrashImage>();
        foreach (long point in cuts?.Points ?? Array.Empty<long>())
            storage.CrashAt(point, new Random(rng.Next()), crashed => { lock (crashes) crashes.Add(new CrashImage(crashed, storage.Step, point)); });
        var settings = new EngineSettings { MappingCache = s.MappingCache, CommitIntervalMs = s.CommitIntervalMs, CommitMaxDirtyChunks = s.CommitMaxDirtyChunks };

        // versions[k + 1]: the disk after step k; versions[0]: the new, empty disk.
        var model = new byte[s.VirtualSize];
        var versions = new List<byte[]> { (byte[])model.Clone() };
        // (step, storage operations when it returned): a barrier covers every step before it once it has returned.
        var barriers = new List<(int Step, long Completed)> { (-1, 0) };
        var image = CowImage.Create(path, new ImageCreateOptions { Size = s.VirtualSize, ClusterSize = s.ClusterSize }, settings, storage);
        long created = storage.Operations;
        try
        {
            for (int step = 0; step < s.Ops.Length; step++)
            {
                storage.Step = step;
                var op = s.Ops[step];
                if (op.Kind == OpKind.Flush)
                {
                    // The flush runs while the next write goes on: extents freed before it must not be reused
                    // by that write until the flush's commit is durable.
                    var current = image;
                    int flushStep = step;
                    long before = storage.Operations;
                    var flush = Task.Run(() => { current.Flush(); lock (barriers) barriers.Add((flushStep, storage.Operations)); });
                    versions.Add((byte[])model.Clone());
                    if (step + 1 < s.Ops.Length && s.Ops[step + 1].Kind is OpKind.Write or OpKind.Discard or OpKind.Zero)
                    {
                        // Go once the flush's commit has begun (its first storage operation), inside the window.
                        SpinWait.SpinUntil(() => storage.Operations > before || flush.IsCompleted, 100);
                        storage.Step = ++step;
                        Apply(image, s.Ops[step], model);
                        versions.Add((byte[])model.Clone());
                    }
                    flush.GetAwaiter().GetResult();
                    continue;
                }
                if (op.Kind == OpKind.Reopen)
                {
                    image.Dispose();
                    lock (barriers) barriers.Add((step, storage.Operations));
                    image = CowImage.Open(path, new ImageOpenOptions { Settings = settings, Storage = storage });
                }
                else Apply(image, op, model);
                versions.Add((byte[])model.Clone());
            }
            storage.Step = s.Ops.Length;
            // Background commits may take a crash image on their thread at this very moment: the list is shared.
            if (cuts is not null)
            {
                var (crashImage, before) = storage.CrashNow(new Random(rng.Next()));
                var final = new CrashImage(crashImage, s.Ops.Length, before);
                lock (crashes) crashes.Add(final);
            }
        }
        finally { image.Dispose(); }
        if (cuts is null) return (created, storage.Operations, 0);

        int checkedImages = 0;
        foreach (var crash in crashes)
        {
            if (crash.Step < 0) continue;   // power cut while the image was being created: create never returned
            Verify(s, path, crash, versions, barriers, settings);
            checkedImages++;
        }
        return (created, storage.Operations, checkedImages);
    }

    private static void Apply(CowImage image, Op op, byte[] model)
    {
        switch (op.Kind)
        {
            case OpKind.Write:
                var data = ModelRunner.Pattern(op.Length, op.Seed);
                image.Write(op.Offset, data);
                data.CopyTo(model, op.Offset);
                break;
            case OpKind.Discard:
                image.Discard(op.Offset, op.Length);
                Array.Clear(model, (int)op.Offset, op.Length);
                break;
            case OpKind.Zero:
                image.WriteZeroes(op.Offset, op.Length);
                Array.Clear(model, (int)op.Offset, op.Length);
                break;
        }
    }

    private static void Verify(CrashScenario s, string path, CrashImage crash, List<byte[]> versions, List<(int Step, long Completed)> barriers, EngineSettings settings)
    {
        // The last barrier that returned before the cut bounds what must have survived.
        int lastBarrier = barriers.Where(b => b.Completed < crash.Operation).Max(b => b.Step);
        Interlocked.Add(ref AcknowledgedWritesChecked, s.Ops.Take(lastBarrier + 1).Count(o => o.Kind == OpKind.Write));
        int first = lastBarrier + 1, last = Math.Min(crash.Step, s.Ops.Length - 1) + 1;   // indexes into versions
        string where = $"power cut during step {crash.Step} (last completed barrier: step {lastBarrier}); scenario: {s}";

        byte[] recovered;
        using (var reopened = Open(path, crash.Storage, settings, readOnly: false, where))
        {
            recovered = new byte[s.VirtualSize];
            reopened.Read(0, recovered);
            try { reopened.CheckInvariants(); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"invariants after recovery: {e.Message}; {where}"); }
        }
        for (int i = 0; i < recovered.Length; i++)
        {
            bool ok = false;
            for (int v = first; v <= last && !ok; v++) ok = versions[v][i] == recovered[i];
            if (!ok)
                throw new Xunit.Sdk.XunitException(
                    $"byte {i} reads 0x{recovered[i]:x2}; it was 0x{versions[first][i]:x2} at the last barrier and never 0x{recovered[i]:x2} after; {where}");
        }
        // Recovery is stable: a second open (read-only) sees exactly what the first one did.
        using var again = Open(path, crash.Storage, settings, readOnly: true, where);
        var second = new byte[s.VirtualSize];
        again.Read(0, second);
        int diff = recovered.AsSpan().CommonPrefixLength(second);
        if (diff < second.Length) throw new Xunit.Sdk.XunitException($"byte {diff} changed between two opens after recovery; {where}");
    }

    private static CowImage Open(string path, PowerLossStorage storage, EngineSettings settings, bool readOnly, string where)
    {
        try { return CowImage.Open(path, new ImageOpenOptions { ReadOnly = readOnly, Settings = settings, Storage = storage }); }
        catch (Exception e) { throw new Xunit.Sdk.XunitException($"image does not open after a power cut: {e.Message}; {where}"); }
    }
}
