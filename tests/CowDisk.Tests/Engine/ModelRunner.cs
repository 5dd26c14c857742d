using System.Security.Cryptography;
using CowDisk.Engine;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;

namespace CowDisk.Tests.Engine;

/// <summary>
/// Runs a scenario against a real image and a plain byte-array model, checking every read, then the
/// invariants: whole-disk contents, no double mapping, used + free covering the data file, the base unchanged,
/// and the same contents after close and reopen. Snapshots are frozen copies of the model: each must read exactly
/// as frozen (checked at every reopen and at the end), whatever was written, reverted or deleted since.
/// </summary>
public static class ModelRunner
{
    public static void Run(ModelScenario s) => Run(s, directIo: false);

    /// <param name="directIo">The data file with O_DIRECT (Engine:DirectIo): unaligned I/O through the bounce buffer.</param>
    public static void Run(ModelScenario s, bool directIo)
    {
        using var dir = new TempDir();
        string imagePath = dir.File("disk.img");
        var model = new byte[s.VirtualSize];
        string? basePath = CreateBase(s, dir, model);
        byte[]? baseHash = basePath is null ? null : HashFiles(basePath);
        // Folds of the mapping journal every few commits, so replaying a journal and folding it are both exercised.
        var settings = new EngineSettings { MappingCache = s.MappingCache, CommitIntervalMs = 50, CommitMaxDirtyChunks = 2, JournalFoldEntries = 3, DirectIo = directIo };

        var snapshots = new List<(string Name, byte[] Frozen)>();
        var clones = new List<(string Snapshot, string Path, byte[] Expected)>();
        int snapshotCounter = 0;
        var image = CowImage.Create(imagePath, new ImageCreateOptions
        {
            Size = s.VirtualSize, ClusterSize = s.ClusterSize, BackingPath = basePath is null ? null : Path.GetFileName(basePath),
        }, settings);
        try
        {
            foreach (var op in s.Ops)
            {
                switch (op.Kind)
                {
                    case OpKind.Write:
                    case OpKind.FuaWrite:
                        var data = Pattern(op.Length, op.Seed);
                        using (var padded = new AlignedBuffer(op.BufferOffset + op.Length))   // at offset 0: page-aligned, as FUSE's buffers
                        {
                            data.CopyTo(padded.Span[op.BufferOffset..]);
                            image.Write(op.Offset, padded.Span.Slice(op.BufferOffset, op.Length), op.Kind == OpKind.FuaWrite ? WriteFlags.Fua : WriteFlags.None);
                        }
                        data.CopyTo(model, op.Offset);
                        break;
                    case OpKind.Read:
                        using (var aligned = new AlignedBuffer(op.BufferOffset + op.Length + 7))
                        {
                            var buffer = aligned.Span;
                            buffer.Fill(0xee);
                            image.Read(op.Offset, buffer.Slice(op.BufferOffset, op.Length));
                            AssertEqual(model.AsSpan((int)op.Offset, op.Length), buffer.Slice(op.BufferOffset, op.Length), op.Offset, s);
                            if (buffer[..op.BufferOffset].IndexOfAnyExcept((byte)0xee) >= 0 ||
                                buffer[(op.BufferOffset + op.Length)..].IndexOfAnyExcept((byte)0xee) >= 0)
                                throw new Xunit.Sdk.XunitException($"read wrote outside its buffer: {s}");
                        }
                        break;
                    case OpKind.Discard:
                        image.Discard(op.Offset, op.Length);
                        Array.Clear(model, (int)op.Offset, op.Length);
                        break;
                    case OpKind.Zero:
                        image.WriteZeroes(op.Offset, op.Length);
                        Array.Clear(model, (int)op.Offset, op.Length);
                        break;
                    case OpKind.Flush:
                        image.Flush();
                        break;
                    case OpKind.Reopen:
                        image.Dispose();
                        VerifySnapshots(imagePath, snapshots, settings, s);
                        image = CowImage.Open(imagePath, new ImageOpenOptions { Settings = settings });
                        break;
                    case OpKind.Snapshot:
                        string name = $"snap-{++snapshotCounter}";
                        image.CreateSnapshot(name);
                        snapshots.Add((name, (byte[])model.Clone()));
                        break;
                    case OpKind.DeleteSnapshot:
                        if (snapshots.Count == 0) break;
                        int victim = op.Seed % snapshots.Count;
                        if (clones.Any(c => c.Snapshot == snapshots[victim].Name))
                        {
                            // A clone reads it: refused, and nothing changes.
                            Xunit.Assert.Throws<ImageOpenException>(() => image.DeleteSnapshot(snapshots[victim].Name));
                            break;
                        }
                        image.DeleteSnapshot(snapshots[victim].Name);
                        snapshots.RemoveAt(victim);
                        break;
                    case OpKind.Clone:
                        if (snapshots.Count == 0) break;
                        // A clone is made with the image closed (its base is the snapshot's view), gets a write of its
                        // own, and must read as the snapshot plus that write; the image reopens unchanged.
                        var (from, frozenAt) = snapshots[op.Seed % snapshots.Count];
                        image.Dispose();
                        string clonePath = dir.File($"clone-{clones.Count}.img");
                        var cloneModel = (byte[])frozenAt.Clone();
                        using (var clone = CowImage.CreateClone(clonePath, new ImageRef(imagePath, from), new ImageCreateOptions(), settings))
                        {
                            var own = Pattern(Math.Min(s.ClusterSize + 3, (int)s.VirtualSize), op.Seed);
                            long at = s.VirtualSize / 3;
                            int n = (int)Math.Min(own.Length, s.VirtualSize - at);
                            clone.Write(at, own.AsSpan(0, n));
                            own.AsSpan(0, n).CopyTo(cloneModel.AsSpan((int)at));
                            var all = new byte[s.VirtualSize];
                            clone.Read(0, all);
                            AssertEqual(cloneModel, all, 0, s);
                        }
                        clones.Add((from, clonePath, cloneModel));
                        image = CowImage.Open(imagePath, new ImageOpenOptions { Settings = settings });
                        break;
                    case OpKind.Revert:
                        if (snapshots.Count == 0) break;
                        var (revertTo, frozen) = snapshots[op.Seed % snapshots.Count];
                        image.RevertSnapshot(revertTo);
                        frozen.CopyTo(model, 0);
                        break;
                }
            }
            VerifyWhole(image, model, s);
            image.CheckInvariants();
            var listed = image.ListSnapshots().Select(x => x.Name).ToList();
            if (!listed.SequenceEqual(snapshots.Select(x => x.Name)))
                throw new Xunit.Sdk.XunitException($"snapshots listed [{string.Join(",", listed)}], expected [{string.Join(",", snapshots.Select(x => x.Name))}]: {s}");
            image.Dispose();
            VerifySnapshots(imagePath, snapshots, settings, s);
            foreach (var (_, clonePath, expected) in clones)
            {
                using var clone = CowImage.Open(clonePath, new ImageOpenOptions { ReadOnly = true, Settings = settings });
                VerifyWhole(clone, expected, s);
            }
            image = CowImage.Open(imagePath, new ImageOpenOptions { ReadOnly = true, Settings = settings });
            VerifyWhole(image, model, s);
            image.CheckInvariants();
        }
        finally { image.Dispose(); }
        if (basePath is not null && !HashFiles(basePath).AsSpan().SequenceEqual(baseHash))
            throw new Xunit.Sdk.XunitException($"base image changed: {s}");
    }

    private static void VerifySnapshots(string imagePath, List<(string Name, byte[] Frozen)> snapshots, EngineSettings settings, ModelScenario s)
    {
        foreach (var (name, frozen) in snapshots)
        {
            using var view = CowImage.Open(imagePath, new ImageOpenOptions { ReadOnly = true, Snapshot = name, Settings = settings });
            var all = new byte[frozen.Length];
            view.Read(0, all);
            int diff = frozen.AsSpan().CommonPrefixLength(all);
            if (diff < frozen.Length)
                throw new Xunit.Sdk.XunitException($"snapshot {name}, byte {diff}: expected 0x{frozen[diff]:x2}, read 0x{all[diff]:x2}; scenario: {s}");
        }
    }

    private static string? CreateBase(ModelScenario s, TempDir dir, byte[] model)
    {
        if (s.Base == BaseKind.None) return null;
        var content = Pattern((int)s.BaseSize, 0x5b);
        content.CopyTo(model, 0);   // past a smaller base the overlay reads zeros
        string path = dir.File("base.img");
        if (s.Base == BaseKind.Raw) File.WriteAllBytes(path, content);
        else
        {
            using var b = CowImage.Create(path, new ImageCreateOptions { Size = s.BaseSize, ClusterSize = 4096 });
            b.Write(0, content);
        }
        return path;
    }

    /// <summary>Position-dependent bytes, so data landing at the wrong offset is caught.</summary>
    public static byte[] Pattern(int length, byte seed)
    {
        var data = new byte[length];
        for (int i = 0; i < length; i++) data[i] = (byte)(seed + i * 7 + (i >> 9));
        return data;
    }

    private static void VerifyWhole(IBlockDevice image, byte[] model, ModelScenario s)
    {
        var all = new byte[model.Length];
        image.Read(0, all);
        AssertEqual(model, all, 0, s);
    }

    private static void AssertEqual(ReadOnlySpan<byte> expected, ReadOnlySpan<byte> actual, long offset, ModelScenario s)
    {
        int diff = expected.CommonPrefixLength(actual);
        if (diff < expected.Length)
            throw new Xunit.Sdk.XunitException(
                $"byte {offset + diff}: expected 0x{expected[diff]:x2}, read 0x{actual[diff]:x2}; scenario: {s}");
    }

    private static byte[] HashFiles(string imagePath)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var f in new[] { imagePath, imagePath + ImageFiles.MetadataSuffix })
            if (File.Exists(f)) sha.AppendData(File.ReadAllBytes(f));
        return sha.GetHashAndReset();
    }
}
