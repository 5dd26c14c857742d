using CowDisk.Engine.Devices;
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

    /// <summary>A snapshot the workload made: its frozen contents and when its create and delete ran and returned.</summary>
    private sealed class SnapshotLife
    {
        public required string Name;
        public required byte[] Frozen;
        public required int CreateStep;
        public long CreateCompleted = long.MaxValue;
        public int DeleteStep = int.MaxValue;
        public long DeleteCompleted = long.MaxValue;
    }

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
        var settings = new EngineSettings
        {
            MappingCache = s.MappingCache, CommitIntervalMs = s.CommitIntervalMs, CommitMaxDirtyChunks = s.CommitMaxDirtyChunks,
            JournalFoldEntries = 1 + s.Seed % 4,   // folds of the mapping journal land between the cuts too
        };

        // versions[k + 1]: the disk after step k; versions[0]: the new, empty disk.
        var model = new byte[s.VirtualSize];
        var versions = new List<byte[]> { (byte[])model.Clone() };
        // (step, storage operations when it returned): a barrier covers every step before it once it has returned.
        var barriers = new List<(int Step, long Completed)> { (-1, 0) };
        var snapshots = new List<SnapshotLife>();
        // FUA writes that returned: (step, storage operations when it returned); each is durable on its own.
        var fuaWrites = new List<(int Step, long Completed)>();
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
                    if (step + 1 < s.Ops.Length && s.Ops[step + 1].Kind is OpKind.Write or OpKind.FuaWrite or OpKind.Discard or OpKind.Zero)
                    {
                        // Go once the flush's commit has begun (its first storage operation), inside the window.
                        SpinWait.SpinUntil(() => storage.Operations > before || flush.IsCompleted, 100);
                        storage.Step = ++step;
                        Apply(image, s.Ops[step], model);
                        if (s.Ops[step].Kind == OpKind.FuaWrite) lock (fuaWrites) fuaWrites.Add((step, storage.Operations));
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
                else if (op.Kind is OpKind.Snapshot or OpKind.DeleteSnapshot or OpKind.Revert)
                {
                    // Each is durable when it returns, with every write before it: a barrier.
                    if (ApplySnapshotOp(image, op, step, model, snapshots, storage))
                        lock (barriers) barriers.Add((step, storage.Operations));
                }
                else
                {
                    Apply(image, op, model);
                    if (op.Kind == OpKind.FuaWrite) lock (fuaWrites) fuaWrites.Add((step, storage.Operations));
                }
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
            Verify(s, path, crash, versions, barriers, fuaWrites, settings, snapshots);
            checkedImages++;
        }
        return (created, storage.Operations, checkedImages);
    }

    private static bool ApplySnapshotOp(CowImage image, Op op, int step, byte[] model, List<SnapshotLife> snapshots, PowerLossStorage storage)
    {
        var live = snapshots.Where(x => x.DeleteStep == int.MaxValue).ToList();
        switch (op.Kind)
        {
            case OpKind.Snapshot:
                var life = new SnapshotLife { Name = $"s{step}", Frozen = (byte[])model.Clone(), CreateStep = step };
                snapshots.Add(life);
                image.CreateSnapshot(life.Name);
                life.CreateCompleted = storage.Operations;
                return true;
            case OpKind.DeleteSnapshot when live.Count > 0:
                var victim = live[op.Seed % live.Count];
                victim.DeleteStep = step;
                image.DeleteSnapshot(victim.Name);
                victim.DeleteCompleted = storage.Operations;
                return true;
            case OpKind.Revert when live.Count > 0:
                var target = live[op.Seed % live.Count];
                image.RevertSnapshot(target.Name);
                target.Frozen.CopyTo(model, 0);
                return true;
        }
        return false;
    }

    private static void Apply(CowImage image, Op op, byte[] model)
    {
        switch (op.Kind)
        {
            case OpKind.Write:
            case OpKind.FuaWrite:
                var data = ModelRunner.Pattern(op.Length, op.Seed);
                image.Write(op.Offset, data, op.Kind == OpKind.FuaWrite ? WriteFlags.Fua : WriteFlags.None);
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

    private static void Verify(CrashScenario s, string path, CrashImage crash, List<byte[]> versions, List<(int Step, long Completed)> barriers,
        List<(int Step, long Completed)> fuaWrites, EngineSettings settings, List<SnapshotLife> snapshots)
    {
        // The last barrier that returned before the cut bounds what must have survived.
        int lastBarrier = barriers.Where(b => b.Completed < crash.Operation).Max(b => b.Step);
        Interlocked.Add(ref AcknowledgedWritesChecked, s.Ops.Take(lastBarrier + 1).Count(o => o.Kind is OpKind.Write or OpKind.FuaWrite));
        // A FUA write that returned before the cut is a barrier for its own bytes: they read as it or as later steps.
        var firstFor = new int[s.VirtualSize];
        foreach (var (fuaStep, completed) in fuaWrites)
        {
            if (completed >= crash.Operation || fuaStep <= lastBarrier) continue;
            Interlocked.Increment(ref AcknowledgedWritesChecked);
            var fua = s.Ops[fuaStep];
            for (long b = fua.Offset; b < fua.Offset + fua.Length; b++) firstFor[b] = Math.Max(firstFor[b], fuaStep + 1);
        }
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
            for (int v = Math.Max(first, firstFor[i]); v <= last && !ok; v++) ok = versions[v][i] == recovered[i];
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
        var present = again.ListSnapshots().Select(x => x.Name).ToHashSet();
        again.Dispose();
        VerifySnapshots(path, crash, settings, snapshots, present, where);
    }

    /// <summary>
    /// A snapshot whose create returned before the cut (and whose delete had not begun) exists; one whose delete
    /// returned, or whose create had not begun, does not; one in between may go either way. Whatever exists
    /// reads exactly as it was frozen.
    /// </summary>
    private static void VerifySnapshots(string path, CrashImage crash, EngineSettings settings, List<SnapshotLife> snapshots,
        HashSet<string> present, string where)
    {
        foreach (string name in present)
            if (!snapshots.Any(x => x.Name == name && x.CreateStep <= crash.Step))
                throw new Xunit.Sdk.XunitException($"snapshot {name} exists but was never created before the cut; {where}");
        foreach (var life in snapshots)
        {
            bool mustExist = life.CreateCompleted < crash.Operation && life.DeleteStep > crash.Step;
            bool mustNotExist = life.DeleteCompleted < crash.Operation || life.CreateStep > crash.Step;
            bool exists = present.Contains(life.Name);
            if (mustExist && !exists) throw new Xunit.Sdk.XunitException($"snapshot {life.Name} (created, durable) is gone; {where}");
            if (mustNotExist && exists) throw new Xunit.Sdk.XunitException($"snapshot {life.Name} exists though its delete was durable or its create never ran; {where}");
            if (!exists) continue;
            using var view = Open(path, crash.Storage, settings, readOnly: true, where, life.Name);
            var all = new byte[life.Frozen.Length];
            view.Read(0, all);
            int diff = life.Frozen.AsSpan().CommonPrefixLength(all);
            if (diff < all.Length)
                throw new Xunit.Sdk.XunitException($"snapshot {life.Name}, byte {diff}: frozen 0x{life.Frozen[diff]:x2}, reads 0x{all[diff]:x2}; {where}");
        }
    }

    private static CowImage Open(string path, PowerLossStorage storage, EngineSettings settings, bool readOnly, string where, string? snapshot = null)
    {
        try { return CowImage.Open(path, new ImageOpenOptions { ReadOnly = readOnly, Settings = settings, Storage = storage, Snapshot = snapshot }); }
        catch (Exception e) { throw new Xunit.Sdk.XunitException($"image does not open after a power cut: {e.Message}; {where}"); }
    }
}
