using System.Diagnostics;
using CowDisk.Engine.Images.Qcow2;
using CowDisk.Tests.Attach;
using Xunit;
using Xunit.Abstractions;

namespace CowDisk.Tests.Qcow2;

/// <summary>Runs only with COWDISK_QCOW2_BENCH=1 (it writes 3 GiB to /dev/shm and takes a minute); prints, asserts nothing.</summary>
public sealed class Qcow2MeasurementFactAttribute : FactAttribute
{
    public Qcow2MeasurementFactAttribute()
    {
        if (Environment.GetEnvironmentVariable("COWDISK_QCOW2_BENCH") != "1") Skip = "a measurement: set COWDISK_QCOW2_BENCH=1 to run it";
        else if (Qcow2ToolFactAttribute.Missing() is { } missing) Skip = $"needs {missing}";
    }
}

/// <summary>
/// Reading a 1 GiB qcow2 of random data (64 KiB clusters) end to end: Qcow2Image in 2 MiB reads against
/// `qemu-img convert -O raw` of the same image to a tmpfs file. Everything lives in /dev/shm, so both read
/// from memory and the figures compare the readers, not a disk.
/// dotnet test CowDisk.sln -c Release --filter "FullyQualifiedName~Qcow2ReadMeasurement" --logger "console;verbosity=detailed"
/// </summary>
public sealed class Qcow2ReadMeasurement(ITestOutputHelper output)
{
    [Qcow2MeasurementFact]
    public void Reads_a_1_GiB_image_end_to_end()
    {
        string folder = Directory.CreateTempSubdirectory("cowdisk-qcow2-bench-").FullName;
        if (Directory.Exists("/dev/shm"))
        {
            Directory.Delete(folder);
            folder = Directory.CreateDirectory(Path.Combine("/dev/shm", $"cowdisk-qcow2-bench-{Guid.NewGuid():N}")).FullName;
        }
        try
        {
            const long size = 1L << 30;
            string raw = Path.Combine(folder, "random.raw"), image = Path.Combine(folder, "random.qcow2"), target = Path.Combine(folder, "out.raw");
            using (var file = new FileStream(raw, FileMode.CreateNew))
            {
                var chunk = new byte[4 << 20];
                var rng = new Random(42);
                for (long at = 0; at < size; at += chunk.Length) { rng.NextBytes(chunk); file.Write(chunk); }
            }
            Qemu.Img("convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=65536", raw, image);
            File.Delete(raw);

            var ours = new List<double>();
            var oursWriting = new List<double>();
            var qemu = new List<double>();
            var buffer = new byte[2 << 20];
            for (int round = 0; round < 3; round++)
            {
                var watch = Stopwatch.StartNew();
                using (var device = Qcow2Image.Open(image, new Qcow2OpenOptions()))
                    for (long at = 0; at < device.Size; at += buffer.Length) device.Read(at, buffer);
                ours.Add(watch.Elapsed.TotalSeconds);

                File.Delete(target);
                watch.Restart();
                using (var device = Qcow2Image.Open(image, new Qcow2OpenOptions()))
                using (var output = new FileStream(target, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.None))
                    for (long at = 0; at < device.Size; at += buffer.Length) { device.Read(at, buffer); output.Write(buffer); }
                oursWriting.Add(watch.Elapsed.TotalSeconds);

                File.Delete(target);
                watch.Restart();
                var result = CommandRunner.Run("qemu-img", ["convert", "-f", "qcow2", "-O", "raw", image, target], TimeSpan.FromMinutes(5));
                qemu.Add(watch.Elapsed.TotalSeconds);
                Assert.Equal(0, result.ExitCode);
            }
            File.Delete(target);
            string Line(string what, List<double> seconds)
            {
                double best = seconds.Min(), median = seconds.Order().ElementAt(seconds.Count / 2);
                return $"{what,-58} best {best,6:F3} s ({size / best / (1 << 20),6:F0} MiB/s)   median {median,6:F3} s";
            }
            output.WriteLine($"1 GiB qcow2 of random data, 64 KiB clusters, in {folder[..folder.LastIndexOf('/')]} (3 rounds):");
            output.WriteLine(Line("Qcow2Image, 2 MiB reads into one buffer", ours));
            output.WriteLine(Line("Qcow2Image, 2 MiB reads, each written to a tmpfs file", oursWriting));
            output.WriteLine(Line("qemu-img convert -O raw to a tmpfs file", qemu));
        }
        finally { Directory.Delete(folder, recursive: true); }
    }
}
