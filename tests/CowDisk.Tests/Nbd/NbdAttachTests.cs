using CowDisk.Tests.Attach;
using Xunit;

namespace CowDisk.Tests.Nbd;

/// <summary>attach --nbd: one disk as a block device and an NBD export at once.</summary>
[Collection(AttachCollection.Name)]
public sealed class NbdAttachTests
{
    [NbdAttachFact]
    public void The_attached_disk_is_served_over_nbd_too()
    {
        using var scratch = new AttachScratch();
        string image = scratch.CreateImage("disk.img", "128M");
        string name = scratch.NewName();
        string link = scratch.Attach(image, name, "--nbd", "unix");
        try
        {
            var record = scratch.Record(name);
            string uri = Assert.Single(record.Nbd!);
            Assert.Equal($"nbd+unix:///{name}?socket={scratch.Paths.NbdSocket(name)}", uri);
            Assert.Contains(scratch.List(), s => s.Name == name && s.Nbd is { Length: 1 });

            // Written over NBD, read from the block device (direct I/O: no stale page cache in between).
            var io = CommandRunner.Run("qemu-io", ["-f", "raw", "-c", "write -P 0x6b 3M 256K", "-c", "flush", uri]);
            Assert.True(io.ExitCode == 0, io.ToString());
            using (var device = new FileStream(link, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None))
            {
                var buffer = new byte[256 << 10];
                device.Position = 3 << 20;
                device.ReadExactly(buffer);
                Assert.True(buffer.AsSpan().IndexOfAnyExcept((byte)0x6b) < 0, "the block device does not show what NBD wrote");
            }
            // Written on the block device, read over NBD.
            var dd = CommandRunner.Run("dd", ["if=/dev/zero", $"of={link}", "bs=64k", "seek=100", "count=2", "oflag=direct", "conv=notrunc"]);
            Assert.True(dd.ExitCode == 0, dd.ToString());
            var read = CommandRunner.Run("qemu-io", ["-r", "-f", "raw", "-c", "read -P 0 6400K 128K", "-c", "read -P 0x6b 3M 256K", uri]);
            Assert.True(read.ExitCode == 0 && !read.Output.Contains("verification failed", StringComparison.Ordinal), read.ToString());
        }
        finally { scratch.Detach(name); }
        Assert.False(File.Exists(scratch.Paths.NbdSocket(name)), "the NBD socket outlived detach");
        var check = scratch.Cow("check", image);
        Assert.True(check.ExitCode == 0, check.ToString());
    }
}
