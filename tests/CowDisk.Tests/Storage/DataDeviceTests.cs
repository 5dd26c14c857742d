using CowDisk.Engine.Devices;
using CowDisk.Engine.Images;
using CowDisk.Tests.Attach;
using CowDisk.Tests.Engine;
using Xunit;

namespace CowDisk.Tests.Storage;

/// <summary>
/// --data-device: extents on a real block device (a loop device over a file here). Its size bounds
/// allocation, it is held exclusively, it carries the image's header so a swapped device is refused.
/// </summary>
[Collection(AttachCollection.Name)]
public sealed class DataDeviceTests
{
    private sealed class LoopDisk : IDisposable
    {
        public string Device { get; }
        private readonly string _backing;

        public LoopDisk(TempDir dir, string name, long size)
        {
            _backing = dir.File(name);
            using (var f = File.Create(_backing)) f.SetLength(size);
            Device = CommandRunner.Check("losetup", "-f", "--show", _backing).Output.Trim();
        }

        public void Dispose() => CommandRunner.Run("losetup", ["-d", Device]);
    }

    [AttachFact]
    public void Extents_live_on_the_device_survive_reopen_and_fill_it_no_further()
    {
        using var dir = new TempDir();
        using var disk = new LoopDisk(dir, "dev.bin", 2 << 20);   // 2 MiB: 31 data clusters of 64K
        string path = dir.File("d.img");
        const int cs = 65536;
        var data = ModelRunner.Pattern(20 * cs + 77, 9);
        using (var image = CowImage.Create(path, new ImageCreateOptions { Size = 100 << 20, ClusterSize = cs, DataDevice = disk.Device }))
        {
            Assert.Equal(disk.Device, image.DataDevice);
            image.Write(3 * cs + 5, data);
            var e = Assert.ThrowsAny<BlockDeviceException>(() => image.Write(40L * cs, new byte[20 * cs]));
            Assert.Equal(28, e.Errno);   // ENOSPC: the device is full, not the host file system
            image.CheckInvariants();
        }
        Assert.Equal(4096, new FileInfo(path).Length);   // the image file keeps the header only
        using (var image = CowImage.Open(path, new ImageOpenOptions { ReadOnly = true }))
        {
            var read = new byte[data.Length];
            image.Read(3 * cs + 5, read);
            Assert.Equal(data, read);
            image.CheckInvariants();
        }
        var info = CowdiskExecutable.Run("info", path);
        Assert.True(info.ExitCode == 0, info.ToString());
        Assert.Contains($"data device: {disk.Device}", info.Output);
    }

    [AttachFact]
    public void A_device_in_use_or_holding_another_image_or_not_a_device_is_refused()
    {
        using var dir = new TempDir();
        using var disk = new LoopDisk(dir, "dev.bin", 4 << 20);
        string a = dir.File("a.img"), b = dir.File("b.img");
        Assert.Equal(0, CowdiskExecutable.Run("create", a, "--size", "10M", "--data-device", disk.Device).ExitCode);

        var again = CowdiskExecutable.Run("create", b, "--size", "10M", "--data-device", disk.Device);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("holds the extents of image", again.Error);
        Assert.False(File.Exists(b));

        var file = CowdiskExecutable.Run("create", b, "--size", "10M", "--data-device", dir.File("dev.bin"));
        Assert.Equal(1, file.ExitCode);
        Assert.Contains("is not a block device", file.Error);

        // A writer holds the device exclusively: a second writer of the image is refused by the image lock,
        // and anything else opening the device exclusively (mkfs, mount) is refused by the kernel.
        using (var image = CowImage.Open(a, new ImageOpenOptions()))
        {
            var mkfs = CommandRunner.Run("mkfs.ext4", ["-q", "-F", disk.Device]);
            Assert.NotEqual(0, mkfs.ExitCode);
        }
        // The device was swapped for a blank one: the image refuses it rather than read garbage.
        CommandRunner.Check("dd", "if=/dev/zero", $"of={disk.Device}", "bs=4096", "count=1", "conv=fsync");
        var open = CowdiskExecutable.Run("io", a, "read", "0", "4K");
        Assert.Equal(1, open.ExitCode);
        Assert.Contains("does not hold the extents", open.Error);
    }
}
