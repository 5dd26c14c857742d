using System.Diagnostics;
using System.Security.Cryptography;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Attach;

/// <summary>
/// kill -9 of the attach daemon under a mounted ext4 file system. Each round: files of random content are
/// written, some fsynced (the file, then its folder; recorded with their SHA-256 only once both returned), the
/// daemon is killed mid-workload, the dead file system is unmounted, the image re-attached. Then, precisely:
/// mounting replays the journal and unmounting succeeds; `e2fsck -fn` on the device then exits 0 (nothing to
/// fix); and every file whose fsyncs returned success before the kill, in this round or an earlier one, exists
/// with exactly its content (fsyncs that return after the kill are not trusted: see FileChurn.DropFsyncsEndedAfter).
///
/// Rounds: COWDISK_EXT4_KILL_ROUNDS (default 6; they count toward the 25 kills a CI run needs, with
/// <see cref="AttachCrashTests"/>). Long mode: COWDISK_EXT4_KILL_ROUNDS=200 (about 7 minutes here:
/// 200 kills, 15119 files fsynced, e2fsck clean every round, lost 0).
/// </summary>
[Collection(AttachCollection.Name)]
public sealed class AttachExt4CrashTests(ITestOutputHelper output)
{
    public const int DefaultRounds = 6;
    private const int KeptFiles = 24;
    private static readonly TimeSpan FailTimeout = TimeSpan.FromSeconds(60);

    [AttachTheory]
    [MemberData(nameof(AttachTransports.Both), MemberType = typeof(AttachTransports))]
    public void Kill_9_under_ext4_keeps_every_fsynced_file_and_the_journal_replays_clean(string transport)
    {
        int rounds = KillRounds.FromEnvironment("COWDISK_EXT4_KILL_ROUNDS", DefaultRounds);
        int seed = KillRounds.Seed();
        output.WriteLine($"rounds {rounds}, seed {seed} (COWDISK_KILL_SEED), FUSE over {transport}");
        var random = new Random(seed);
        long started = Environment.TickCount64;
        int kills = 0;
        long filesWritten = 0, filesFsynced = 0, bytesWritten = 0, filesVerified = 0, bytesVerified = 0, lateFsyncsTotal = 0;

        using var scratch = new AttachScratch(transport: transport);
        string image = scratch.CreateImage("disk.img", "256M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        CommandRunner.Check("mkfs.ext4", "-q", "-F", link);
        string mountPoint = scratch.Mount(link);
        Directory.CreateDirectory(Path.Combine(mountPoint, "data"));
        Assert.Equal(0, Posix.FsyncDirectory(mountPoint));
        var durable = new Dictionary<string, string>(StringComparer.Ordinal); // relative path → SHA-256

        for (int round = 1; round <= rounds; round++)
        {
            int pid = Assert.Single(scratch.List(), s => s.Name == name).Pid;
            var writer = new FileChurn(mountPoint, round, random.Next(), durable);
            writer.Start();
            Thread.Sleep(random.Next(300, 2000));
            for (long deadline = Environment.TickCount64 + 10_000; writer.FilesWritten == 0 && Environment.TickCount64 < deadline;)
                Thread.Sleep(10);
            Assert.True(writer.Error is null, $"round {round}: the writer failed before the kill: {writer.Error}");
            Assert.True(writer.FilesWritten > 0, $"round {round}: the writer had not written a file after 10 s");
            long killedAt = Stopwatch.GetTimestamp();
            Posix.Kill9(pid);
            kills++;
            if (!writer.Join(FailTimeout))
                Assert.Fail($"round {round}: file I/O on the dead device hung for {FailTimeout.TotalSeconds} s after kill -9");
            Assert.True(writer.Error is not null, $"round {round}: the writer's I/O did not fail after kill -9");

            int lateFsyncs = writer.DropFsyncsEndedAfter(killedAt, durable);
            scratch.UnmountDead(mountPoint);
            link = scratch.Attach(image, name);
            Assert.NotEqual(pid, scratch.Record(name).Pid);
            scratch.Unmount(scratch.Mount(link)); // replays the journal
            var fsck = CommandRunner.Run("e2fsck", ["-fn", link]);
            Assert.True(fsck.ExitCode == 0, $"round {round} (seed {seed}): e2fsck -fn after journal replay: {fsck}");

            mountPoint = scratch.Mount(link);
            var lost = new List<string>();
            foreach (var (relative, sum) in durable)
            {
                string path = Path.Combine(mountPoint, relative);
                if (!File.Exists(path)) { lost.Add($"{relative}: missing ({writer.FsyncTiming(relative, killedAt)})"); continue; }
                string actual = AttachScratch.FileChecksum(path);
                if (actual != sum) lost.Add($"{relative}: SHA-256 {actual}, fsynced as {sum} ({writer.FsyncTiming(relative, killedAt)})");
                else { filesVerified++; bytesVerified += new FileInfo(path).Length; }
            }
            Assert.True(lost.Count == 0, $"round {round} (seed {seed}): {lost.Count} fsynced files lost or changed:\n{string.Join('\n', lost)}");

            lateFsyncsTotal += lateFsyncs;
            filesWritten += writer.FilesWritten;
            filesFsynced += writer.FilesFsynced;
            bytesWritten += writer.BytesWritten;
            output.WriteLine($"round {round}: {writer.FilesWritten} files written, {writer.FilesFsynced} fsynced; " +
                             $"writer failed with \"{writer.Error}\"; {durable.Count} fsynced files verified " +
                             $"({lateFsyncs} whose fsync returned after the kill not checked); e2fsck -fn clean");
            Prune(mountPoint, durable, random);
        }
        scratch.Unmount(mountPoint);
        scratch.Detach(name);

        var info = CowdiskExecutable.Run("info", image);
        Assert.True(info.ExitCode == 0, $"info failed: {info}");
        Assert.Contains("clean shutdown: yes", info.Output);
        output.WriteLine($"kills: {kills}, files written: {filesWritten} ({bytesWritten >> 20} MiB), fsynced: {filesFsynced}, " +
                         $"fsynced files verified: {filesVerified} ({bytesVerified} bytes; a file kept is checked again each round), " +
                         $"fsyncs that returned after the kill (not checked): {lateFsyncsTotal}, lost: 0, " +
                         $"{(Environment.TickCount64 - started) / 1000.0:0.0} s");
    }

    /// <summary>Deletes every file but up to KeptFiles fsynced ones, which later rounds check again.</summary>
    private static void Prune(string mountPoint, Dictionary<string, string> durable, Random random)
    {
        var keep = durable.Keys.OrderBy(_ => random.Next()).Take(KeptFiles).ToHashSet(StringComparer.Ordinal);
        foreach (string relative in durable.Keys.Where(k => !keep.Contains(k)).ToList()) durable.Remove(relative);
        foreach (string file in Directory.EnumerateFiles(Path.Combine(mountPoint, "data")).ToList())
        {
            if (!keep.Contains(Path.GetRelativePath(mountPoint, file))) File.Delete(file);
        }
    }

    /// <summary>
    /// Creates files of random size and content under data/ until a call fails; about 40 % are fsynced, then
    /// their folder, and only then entered in the durable set. Keeps this round's files under 64 MiB by deleting
    /// its oldest ones (dropped from the durable set before the unlink). Fsynced files are never changed again.
    /// </summary>
    private sealed class FileChurn(string mountPoint, int round, int seed, Dictionary<string, string> durable)
    {
        private const long RoundBytesCap = 64L << 20;
        private Thread? _running;
        private volatile string? _error;
        private long _filesWritten, _filesFsynced, _bytesWritten;

        private readonly Dictionary<string, (long Started, long Ended)> _fsyncTimes = new(StringComparer.Ordinal);

        public string? Error => _error;

        /// <summary>
        /// Removes from the durable set this round's files whose fsyncs returned only after the kill; returns how many.
        /// Once the device fails, ext4 turns read-only and then fsync may return 0 (or EROFS) without writing
        /// anything, so a success that came back after the kill promises nothing. One that came back before it
        /// covers a FLUSH the daemon completed.
        /// </summary>
        public int DropFsyncsEndedAfter(long moment, Dictionary<string, string> durable)
        {
            lock (_fsyncTimes)
            {
                var late = _fsyncTimes.Where(entry => entry.Value.Ended >= moment).Select(entry => entry.Key).ToList();
                foreach (string relative in late) durable.Remove(relative);
                return late.Count;
            }
        }

        /// <summary>When this round's fsync of a file started and its folder's fsync ended, relative to a moment.</summary>
        public string FsyncTiming(string relative, long moment)
        {
            lock (_fsyncTimes)
            {
                if (!_fsyncTimes.TryGetValue(relative, out var times)) return "fsynced in an earlier round";
                return $"fsync started {Stopwatch.GetElapsedTime(times.Started, moment).TotalMilliseconds:0.0} ms and ended " +
                       $"{Stopwatch.GetElapsedTime(times.Ended, moment).TotalMilliseconds:0.0} ms before the kill";
            }
        }
        public long FilesWritten => Interlocked.Read(ref _filesWritten);
        public long FilesFsynced => Interlocked.Read(ref _filesFsynced);
        public long BytesWritten => Interlocked.Read(ref _bytesWritten);

        public void Start()
        {
            _running = new Thread(Run) { IsBackground = true, Name = $"ext4-writer-{round}" };
            _running.Start();
        }

        public bool Join(TimeSpan timeout) => _running!.Join(timeout);

        private void Run()
        {
            var random = new Random(seed);
            string folder = Path.Combine(mountPoint, "data");
            var created = new Queue<(string Path, long Bytes)>();
            var unsynced = new List<string>();
            long live = 0;
            try
            {
                for (int i = 0; ; i++)
                {
                    var bytes = new byte[random.Next(10) < 7 ? random.Next(1, 256 << 10) : random.Next(256 << 10, 2 << 20)];
                    random.NextBytes(bytes);
                    if (unsynced.Count > 0 && random.Next(10) == 0)
                    {
                        // Rewrite a file that was never fsynced: more metadata and data churn, no promise.
                        File.WriteAllBytes(unsynced[random.Next(unsynced.Count)], bytes);
                        continue;
                    }
                    string path = Path.Combine(folder, $"r{round}-{i}.bin");
                    bool sync = random.Next(10) < 4;
                    long fsyncStarted = 0;
                    using (var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0))
                    {
                        stream.Write(bytes);
                        fsyncStarted = Stopwatch.GetTimestamp();
                        if (sync && Posix.Fsync(stream.SafeFileHandle) is var result and < 0)
                            throw new IOException($"fsync of {path}: {DirectBlockDevice.ErrnoName(-result)}");
                    }
                    if (sync && Posix.FsyncDirectory(folder) is var folderResult and < 0)
                        throw new IOException($"fsync of {folder}: {DirectBlockDevice.ErrnoName(-folderResult)}");
                    Interlocked.Increment(ref _filesWritten);
                    Interlocked.Add(ref _bytesWritten, bytes.Length);
                    if (sync)
                    {
                        lock (durable) durable[Path.GetRelativePath(mountPoint, path)] = Convert.ToHexString(SHA256.HashData(bytes));
                        lock (_fsyncTimes) _fsyncTimes[Path.GetRelativePath(mountPoint, path)] = (fsyncStarted, Stopwatch.GetTimestamp());
                        Interlocked.Increment(ref _filesFsynced);
                    }
                    else unsynced.Add(path);
                    created.Enqueue((path, bytes.Length));
                    live += bytes.Length;
                    while (live > RoundBytesCap)
                    {
                        var (oldest, size) = created.Dequeue();
                        lock (durable) durable.Remove(Path.GetRelativePath(mountPoint, oldest));
                        unsynced.Remove(oldest);
                        File.Delete(oldest);
                        live -= size;
                    }
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _error = e.Message.ReplaceLineEndings(" ");
            }
        }
    }
}
