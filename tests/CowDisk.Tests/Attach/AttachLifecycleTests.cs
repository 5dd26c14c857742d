using Xunit;

namespace CowDisk.Tests.Attach;

/// <summary>attach → file system → detach → attach, with overlay and read-only variants, against the real CLI.</summary>
[Collection(AttachCollection.Name)]
public sealed class AttachLifecycleTests
{
    [AttachTheory]
    [MemberData(nameof(AttachTransports.Both), MemberType = typeof(AttachTransports))]
    public void Files_survive_detach_and_reattach(string transport)
    {
        using var scratch = new AttachScratch(transport: transport);
        string image = scratch.CreateImage("disk.img", "512M");
        string name = scratch.NewName();

        string link = scratch.Attach(image, name);
        var record = scratch.Record(name);
        Assert.Equal("running", record.State);
        Assert.Equal(record.Device, new FileInfo(link).LinkTarget);
        Assert.Contains(scratch.List(), s => s.Name == name && s.Device == record.Device && s.State == "running");
        var written = scratch.FormatAndFill(link, count: 40, seed: 1);
        scratch.Detach(name);

        Assert.False(File.Exists(link) || new FileInfo(link).LinkTarget is not null, "the link outlived detach");
        Assert.False(File.Exists($"/sys/block/{Path.GetFileName(record.Device)}/loop/backing_file"), "the loop device is still bound");
        Assert.False(File.Exists(scratch.Paths.RecordPath(name)), "the record outlived detach");

        link = scratch.Attach(image, name);
        Assert.Equal(written, scratch.MountedChecksums(link));
        scratch.Detach(name);
    }

    [AttachFact]
    public void Overlay_takes_the_writes_and_leaves_the_base_identical()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("base.img", "256M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        var baseFiles = scratch.FormatAndFill(link, count: 10, seed: 2);
        scratch.Detach(name);
        string baseData = AttachScratch.FileChecksum(image), baseMetadata = AttachScratch.FileChecksum(image + ".meta.db");

        string overlayName = scratch.NewName();
        var attach = CowdiskExecutable.Run("attach", image, "--name", overlayName, "--overlay");
        Assert.True(attach.ExitCode == 0, $"attach --overlay failed: {attach}");
        string overlay = scratch.Record(overlayName).Overlay!;
        Assert.Contains($"overlay: {overlay}", attach.Output);
        string mountPoint = scratch.Mount(scratch.Paths.LinkPath(overlayName));
        Assert.Equal(baseFiles, AttachScratch.Checksums(mountPoint));
        AttachScratch.WriteFiles(mountPoint, count: 10, seed: 3);
        File.Delete(Path.Combine(mountPoint, "data", "file2-0.bin"));
        var overlayFiles = AttachScratch.Checksums(mountPoint);
        scratch.Unmount(mountPoint);
        scratch.Detach(overlayName);

        Assert.Equal(baseData, AttachScratch.FileChecksum(image));
        Assert.Equal(baseMetadata, AttachScratch.FileChecksum(image + ".meta.db"));
        link = scratch.Attach(overlay, overlayName);
        Assert.Equal(overlayFiles, scratch.MountedChecksums(link));
        scratch.Detach(overlayName);
    }

    [AttachTheory]
    [MemberData(nameof(AttachTransports.Both), MemberType = typeof(AttachTransports))]
    public void Read_only_attach_refuses_writes_and_leaves_the_image_unchanged(string transport)
    {
        using var scratch = new AttachScratch(transport: transport);
        string image = scratch.CreateImage("disk.img", "256M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        var files = scratch.FormatAndFill(link, count: 10, seed: 4);
        scratch.Detach(name);
        string data = AttachScratch.FileChecksum(image), metadata = AttachScratch.FileChecksum(image + ".meta.db");

        link = scratch.Attach(image, name, "--read-only");
        Assert.True(scratch.Record(name).ReadOnly);
        Assert.Equal("1", CommandRunner.Check("blockdev", "--getro", link).Output.Trim());
        var write = CommandRunner.Run("dd", ["if=/dev/zero", $"of={link}", "bs=4096", "count=16", "oflag=direct"]);
        Assert.NotEqual(0, write.ExitCode);
        Assert.Equal(files, scratch.MountedChecksums(link, "-o", "ro,noload"));

        // A writer is refused while a reader holds the image, and told who.
        string writer = scratch.NewName();
        var refused = CowdiskExecutable.Run("attach", image, "--name", writer);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains($"'{name}'", refused.Error);
        scratch.Detach(name);

        Assert.Equal(data, AttachScratch.FileChecksum(image));
        Assert.Equal(metadata, AttachScratch.FileChecksum(image + ".meta.db"));
    }

    [AttachFact]
    public void A_second_writer_and_a_duplicate_name_are_refused_naming_the_holder()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "64M");
        string other = scratch.CreateImage("other.img", "64M");
        string name = scratch.NewName();
        scratch.Attach(image, name);
        int pid = scratch.Record(name).Pid;

        var secondWriter = CowdiskExecutable.Run("attach", image, "--name", scratch.NewName());
        Assert.NotEqual(0, secondWriter.ExitCode);
        Assert.Contains($"'{name}'", secondWriter.Error);
        Assert.Contains($"pid {pid}", secondWriter.Error);
        Assert.Single(secondWriter.Error.Trim().Split('\n'));

        var sameName = CowdiskExecutable.Run("attach", other, "--name", name);
        Assert.NotEqual(0, sameName.ExitCode);
        Assert.Contains("already attached", sameName.Error);

        var badName = CowdiskExecutable.Run("attach", other, "--name", "../escape");
        Assert.NotEqual(0, badName.ExitCode);
        Assert.Contains("invalid name", badName.Error);
        scratch.Detach(name);
    }

    /// <summary>
    /// --io-uring turns the kernel's switch on only while it is needed and back off after (also when the daemon was
    /// killed: the cleanup does it), and a switch that was already on is left on.
    /// </summary>
    [AttachFact]
    public void The_io_uring_switch_is_restored_by_whoever_turned_it_on()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        using var uring = new UringSwitch();   // put back as found at the end
        uring.Value = "N";
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        var attached = scratch.AttachWithOutput(image, name);
        Assert.Equal("Y", uring.Value);
        // Said on stderr, not only in the daemon's log (gone after a clean detach); stdout keeps the device lines.
        Assert.Contains("cowdisk: turned on FUSE over io_uring", attached.Error);
        Assert.DoesNotContain("turned on", attached.Output);
        scratch.Detach(name);
        Assert.Equal("N", uring.Value);

        scratch.Attach(image, name);
        Posix.Kill9(scratch.Record(name).Pid);
        long deadline = Environment.TickCount64 + 10_000;   // list cleans up after the dead daemon
        while (scratch.List().Any(s => s.Name == name) && Environment.TickCount64 < deadline) Thread.Sleep(100);
        Assert.DoesNotContain(scratch.List(), s => s.Name == name);
        Assert.Equal("N", uring.Value);

        uring.Value = "Y";   // on before us: not ours to turn off
        scratch.Attach(image, name);
        scratch.Detach(name);
        Assert.Equal("Y", uring.Value);
    }

    /// <summary>
    /// With O_DIRECT every request waits on the disk in its thread, so the default worker count follows
    /// Engine:DirectIo (8, or 32); an explicit --fuse-threads wins. The daemon names its count in its log.
    /// </summary>
    [AttachFact]
    public void The_default_fuse_thread_count_follows_direct_io_and_an_explicit_count_wins()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "64M");
        foreach (var (options, workers) in new[]
        {
            (Array.Empty<string>(), 8),
            (new[] { "--set", "Engine:DirectIo=true" }, 32),
            (new[] { "--set", "Engine:DirectIo=true", "--fuse-threads", "5" }, 5),
        })
        {
            string name = scratch.NewName();
            scratch.Attach(image, name, options);
            string log = File.ReadAllText(scratch.Paths.LogPath(name));
            scratch.Detach(name);
            Assert.True(log.Contains($", {workers} workers,"), $"attach {string.Join(' ', options)}: expected {workers} workers in the log: {log}");
        }
    }

    /// <summary>
    /// Over io_uring, two threads share each CPU's queue when the queue threads serve data themselves (page cache
    /// on), with bulk workers for big requests, and one does with Engine:DirectIo (the pool serves), without bulk
    /// workers: counted by name among the daemon's threads, and in its log.
    /// </summary>
    [AttachFact]
    public void Io_uring_queues_get_two_threads_and_bulk_workers_with_the_page_cache_and_one_thread_with_direct_io()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        using var uring = new UringSwitch();   // put back as found at the end
        int queues = PossibleCpus();
        string image = scratch.CreateImage("disk.img", "64M");
        foreach (var (options, perQueue) in new[] { (Array.Empty<string>(), 2), (new[] { "--set", "Engine:DirectIo=true" }, 1) })
        {
            string name = scratch.NewName();
            scratch.Attach(image, name, options);
            int pid = scratch.Record(name).Pid;
            var threads = Directory.GetDirectories($"/proc/{pid}/task")
                .Select(task => { try { return File.ReadAllText(Path.Combine(task, "comm")).Trim(); } catch (IOException) { return ""; } })
                .Where(comm => System.Text.RegularExpressions.Regex.IsMatch(comm, @"^fuse-q\d+\.\d+$"))
                .ToList();
            int bulkWorkers = ThreadTicks(pid, @"^fuse-bulk-\d+$").Count;
            string log = File.ReadAllText(scratch.Paths.LogPath(name));
            scratch.Detach(name);
            if (perQueue == 2)
            {
                var logged = System.Text.RegularExpressions.Regex.Match(log, @"queue threads, (\d+) bulk workers");
                Assert.True(logged.Success && int.Parse(logged.Groups[1].Value) == bulkWorkers && bulkWorkers > 0,
                    $"attach {string.Join(' ', options)}: {bulkWorkers} bulk worker threads; log: {log}");
            }
            else Assert.True(bulkWorkers == 0, $"attach {string.Join(' ', options)}: {bulkWorkers} bulk workers with direct I/O");
            Assert.True(threads.Count == queues * perQueue, $"attach {string.Join(' ', options)}: expected {queues * perQueue} queue threads, found {string.Join(", ", threads)}");
            for (int q = 0; q < queues; q++)
                for (int t = 0; t < perQueue; t++) Assert.Contains($"fuse-q{q}.{t}", threads);
            Assert.Contains($"{queues} queues, {queues * perQueue} queue threads", log);
        }
    }

    /// <summary>
    /// Big READs and WRITEs go to the bulk workers, whose rings then keep their entries, and other requests that
    /// arrive in those entries are returned to the queue threads: mixed 4 KiB to 1 MiB direct I/O must read back
    /// what was written (fio's crc32c verify of every block), the bulk workers must have done work during it (CPU
    /// time against a sample taken after attach, when they had started), and the daemon must end at detach.
    /// </summary>
    [AttachFact]
    public void Mixed_sizes_over_io_uring_read_back_intact_with_big_requests_on_the_bulk_workers()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        string image = scratch.CreateImage("disk.img", "256M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        int pid = scratch.Record(name).Pid;
        Assert.Equal(AttachTransports.IoUring, scratch.Record(name).Transport);
        var before = ThreadTicks(pid, @"^fuse-bulk-\d+$");

        var fio = CommandRunner.Run("fio", ["--name=mixed", $"--filename={link}", "--direct=1", "--ioengine=libaio", "--iodepth=16",
            "--rw=randwrite", "--bssplit=4k/40:16k/10:64k/10:256k/10:1m/30", "--size=192M", "--randseed=7",
            "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--output-format=terse"], TimeSpan.FromMinutes(3));
        Assert.True(fio.ExitCode == 0, $"fio verify failed: {fio}");

        var bulk = ThreadTicks(pid, @"^fuse-bulk-\d+$");
        scratch.Detach(name);
        Assert.True(bulk.Count > 0, "no bulk worker threads with the page cache on");
        long worked = bulk.Sum(b => b.Value - before.GetValueOrDefault(b.Key));
        Assert.True(worked > 0, $"the bulk workers did no work: {string.Join(", ", bulk.Select(b => $"{b.Key}={before.GetValueOrDefault(b.Key)}->{b.Value}"))}");
        // Its threads, bulk workers included, end with it (a zombie's are gone: init reaps it in its own time).
        long deadline = Environment.TickCount64 + 30_000;
        while (Directory.Exists($"/proc/{pid}") && !CowDisk.Engine.Frontends.Attach.DaemonProcess.IsExiting(pid) && Environment.TickCount64 < deadline) Thread.Sleep(50);
        Assert.True(!Directory.Exists($"/proc/{pid}") || CowDisk.Engine.Frontends.Attach.DaemonProcess.IsExiting(pid), "the daemon outlived detach by 30 s");
    }

    /// <summary>
    /// Over io_uring the daemon asks, through PM QoS, that idle CPUs poll rather than halt while requests come, and
    /// lifts the request once they stop: /dev/cpu_dma_latency must read 0 during QD1 reads and what it read before
    /// once the disk is idle, and the daemon must not hold the device with Engine:PollMicroseconds=0.
    /// </summary>
    [AttachFact]
    public void Over_io_uring_idle_cpus_poll_while_requests_come_and_halt_again_once_the_disk_is_idle()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        int baseline = CpuLatencyQos.AssertNobodyAsks();
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name);
        int pid = scratch.Record(name).Pid;
        try
        {
            Assert.Equal(AttachTransports.IoUring, scratch.Record(name).Transport);
            Assert.True(HoldsCpuLatencyDevice(pid), "the daemon does not hold /dev/cpu_dma_latency");
            // Idle once udev and blkid have looked at the new device: nothing asked.
            Assert.True(CpuLatencyQos.ReturnsTo(baseline), $"the CPU latency limit stays {CpuLatencyQos.Limit()} us on an idle disk, not {baseline}");

            using var fio = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("fio",
                ["--name=qd1", $"--filename={link}", "--direct=1", "--ioengine=libaio", "--iodepth=1", "--rw=randread", "--bs=4k",
                 "--size=64M", "--time_based", "--runtime=3", "--output-format=terse"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            try
            {
                Thread.Sleep(1500);
                int during = CpuLatencyQos.Limit();
                Assert.True(during == 0, $"during QD1 reads the CPU latency limit is {during} us, not 0");
            }
            finally
            {
                if (!fio.WaitForExit(30_000))
                {
                    fio.Kill(entireProcessTree: true);   // fio runs its job in a child, which holds the device
                    fio.WaitForExit();
                }
            }
            Assert.True(fio.ExitCode == 0, $"fio failed: {fio.StandardOutput.ReadToEnd()} {fio.StandardError.ReadToEnd()}");
            // Lifted once no request came for the window (Engine:PollMicroseconds, 250 us), checked every millisecond.
            Assert.True(CpuLatencyQos.ReturnsTo(baseline), $"the CPU latency limit stays {CpuLatencyQos.Limit()} us after the reads, not {baseline}");
        }
        finally { scratch.Detach(name); }

        string off = scratch.NewName();
        scratch.Attach(image, off, "--set", "Engine:PollMicroseconds=0");
        bool held = HoldsCpuLatencyDevice(scratch.Record(off).Pid);
        scratch.Detach(off);
        Assert.False(held, "the daemon holds /dev/cpu_dma_latency with Engine:PollMicroseconds=0");
    }

    private static bool HoldsCpuLatencyDevice(int pid) =>
        Directory.GetFiles($"/proc/{pid}/fd").Any(fd => { try { return new FileInfo(fd).LinkTarget == "/dev/cpu_dma_latency"; } catch (IOException) { return false; } });

    /// <summary>CPU time (clock ticks) of the process's threads whose name matches.</summary>
    private static Dictionary<string, long> ThreadTicks(int pid, string namePattern)
    {
        var ticks = new Dictionary<string, long>();
        foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
        {
            try
            {
                string stat = File.ReadAllText(Path.Combine(task, "stat"));
                string comm = stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')];
                if (!System.Text.RegularExpressions.Regex.IsMatch(comm, namePattern)) continue;
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');   // from field 3 (state) on
                ticks[comm] = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException) { }   // the thread ended meanwhile
        }
        return ticks;
    }

    /// <summary>
    /// A queue thread that fails after the kernel took another thread's entries (the same queue's, or another
    /// queue's) must fail the attach, cleanly: a fallback to /dev/fuse then leaves requests on rings nobody serves.
    /// </summary>
    [AttachFact]
    public void A_queue_thread_failing_after_the_kernel_took_entries_fails_the_attach_cleanly()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        using var uring = new UringSwitch();   // put back as found at the end
        string image = scratch.CreateImage("disk.img", "64M");
        // 0.1: queue 0's second thread (page cache on); 0.0 with Engine:DirectIo: queue 0's only thread.
        foreach (var (thread, options) in new[] { ("0.1", Array.Empty<string>()), ("0.0", new[] { "--set", "Engine:DirectIo=true" }) })
        {
            string name = scratch.NewName();
            var env = new Dictionary<string, string> { ["COWDISK_FUSE_URING_FAIL_THREAD"] = thread };
            var failed = CommandRunner.Run(CowdiskExecutable.Path, ["attach", image, "--name", name, "--io-uring", .. options], environment: env);
            Assert.True(failed.ExitCode != 0, failed.ToString());
            Assert.Contains("failed after INIT chose it", failed.Error);
            Assert.DoesNotContain(scratch.List(), s => s.Name == name);
            Assert.DoesNotContain(image, CommandRunner.Run("losetup", ["-a"]).Output);
            Assert.DoesNotContain($"/{name}.fuse ", File.ReadAllText("/proc/self/mounts"));
        }
        string again = scratch.NewName();   // the image is free again
        scratch.Attach(image, again);
        scratch.Detach(again);
    }

    /// <summary>
    /// A daemon killed while starting, after it turned the io_uring switch on but before it mounted: the cleanup
    /// of its record (here by `list`) turns the switch back off, as a clean detach would.
    /// </summary>
    [AttachFact]
    public void A_daemon_killed_right_after_turning_io_uring_on_leaves_the_switch_as_it_was()
    {
        using var scratch = new AttachScratch(transport: AttachTransports.IoUring);
        using var uring = new UringSwitch();   // put back as found at the end
        uring.Value = "N";
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        var env = new Dictionary<string, string> { ["COWDISK_FUSE_URING_HANG_AFTER_SWITCH"] = "1" };
        using var daemon = CommandRunner.Start(CowdiskExecutable.Path, ["attach", image, "--name", name, "--io-uring", "--foreground"], env);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!(uring.Value == "Y" && File.Exists(scratch.Paths.RecordPath(name)) && scratch.Record(name).TurnedOnIoUring))
            {
                Assert.False(daemon.HasExited, "the daemon exited before it turned io_uring on");
                Assert.True(DateTime.UtcNow < deadline, "the daemon did not turn io_uring on within 60 s");
                Thread.Sleep(50);
            }
            daemon.Kill();
            daemon.WaitForExit(10_000);
        }
        finally { if (!daemon.HasExited) daemon.Kill(); }
        var listed = scratch.Cow("list");
        Assert.True(listed.ExitCode == 0, listed.ToString());
        Assert.Equal("N", uring.Value);
        Assert.False(File.Exists(scratch.Paths.RecordPath(name)), "the dead daemon's record is still there");
    }

    /// <summary>The kernel's FUSE-over-io_uring switch, which these tests flip: put back as found when disposed.</summary>
    private sealed class UringSwitch : IDisposable
    {
        private const string Parameter = "/sys/module/fuse/parameters/enable_uring";
        private readonly string _before = File.ReadAllText(Parameter).Trim();

        public string Value
        {
            get => File.ReadAllText(Parameter).Trim();
            set => File.WriteAllText(Parameter, value);
        }

        public void Dispose() => File.WriteAllText(Parameter, _before);
    }

    /// <summary>Highest possible CPU + 1, as the kernel counts FUSE's io_uring queues.</summary>
    private static int PossibleCpus() =>
        File.ReadAllText("/sys/devices/system/cpu/possible").Trim().Split(',')
            .Max(part => int.Parse(part.Split('-')[^1], System.Globalization.CultureInfo.InvariantCulture)) + 1;

    /// <summary>Where the kernel has no FUSE over io_uring, --io-uring falls back with a notice and --require-io-uring fails.</summary>
    [AttachFact]
    public void Without_kernel_support_io_uring_falls_back_or_fails_as_asked()
    {
        using var scratch = new AttachScratch();
        using var uring = new UringSwitch();   // put back as found at the end
        uring.Value = "N";   // the kernel offers no io_uring at INIT...
        var env = new Dictionary<string, string> { [FuseUringSwitchPathVariable] = Path.Combine(scratch.Folder, "no-such-switch") };   // ...and we cannot turn it on
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        var fallback = CommandRunner.Run(CowdiskExecutable.Path, ["attach", image, "--name", name, "--io-uring"], environment: env);
        Assert.True(fallback.ExitCode == 0, fallback.ToString());
        Assert.Equal(AttachTransports.DevFuse, scratch.Record(name).Transport);
        Assert.Contains("FUSE over io_uring is not available", File.ReadAllText(scratch.Paths.LogPath(name)));
        Assert.Contains("cowdisk: FUSE over io_uring is not available", fallback.Error);   // the notice reaches the user too
        scratch.Detach(name);

        var required = CommandRunner.Run(CowdiskExecutable.Path, ["attach", image, "--name", name, "--require-io-uring"], environment: env);
        Assert.NotEqual(0, required.ExitCode);
        Assert.Contains("FUSE over io_uring is not available", required.Error);
        Assert.Single(required.Error.Trim().Split('\n'));
        Assert.DoesNotContain(scratch.List(), s => s.Name == name && s.State == "running");
        Assert.Equal("N", uring.Value);
    }

    /// <summary>
    /// Where this process cannot set up an io_uring (kernel.io_uring_disabled, a seccomp filter; here the test hook
    /// that fails the probe), io_uring must not be offered at INIT: a connection that took it would hold every request
    /// for rings that never come (seen: an attach that waited 120 s, then left a dead mount). So --io-uring falls back
    /// at once with a notice on stderr, without touching the switch, and --require-io-uring fails with nothing left.
    /// </summary>
    [AttachFact]
    public void When_no_ring_can_be_set_up_io_uring_is_not_offered_at_INIT()
    {
        using var scratch = new AttachScratch();
        using var uring = new UringSwitch();   // put back as found at the end
        uring.Value = "N";
        var env = new Dictionary<string, string> { ["COWDISK_FUSE_URING_FAIL_THREAD"] = "probe" };
        string image = scratch.CreateImage("disk.img", "64M");
        string name = scratch.NewName();
        var fallback = CommandRunner.Run(CowdiskExecutable.Path, ["attach", image, "--name", name, "--io-uring"], environment: env);
        Assert.True(fallback.ExitCode == 0, fallback.ToString());
        Assert.Contains("cowdisk: FUSE over io_uring is not available (failing the ring probe", fallback.Error);
        Assert.Equal(AttachTransports.DevFuse, scratch.Record(name).Transport);
        Assert.Equal("N", uring.Value);   // not turned on for nothing
        var wrote = CommandRunner.Run("dd", ["if=/dev/urandom", $"of={scratch.Record(name).Device}", "bs=64k", "count=16", "oflag=direct"]);
        Assert.True(wrote.ExitCode == 0, wrote.ToString());   // served, not held for rings
        scratch.Detach(name);

        var required = CommandRunner.Run(CowdiskExecutable.Path, ["attach", image, "--name", name, "--require-io-uring"], environment: env);
        Assert.NotEqual(0, required.ExitCode);
        Assert.Contains("FUSE over io_uring is not available: failing the ring probe", required.Error);
        Assert.Single(required.Error.Trim().Split('\n'));
        Assert.DoesNotContain(scratch.List(), s => s.Name == name);
        Assert.DoesNotContain(image, CommandRunner.Run("losetup", ["-a"]).Output);
        Assert.DoesNotContain($"/{name}.fuse ", File.ReadAllText("/proc/self/mounts"));
        Assert.Equal("N", uring.Value);
    }

    private const string FuseUringSwitchPathVariable = "COWDISK_FUSE_URING_SWITCH";
}
