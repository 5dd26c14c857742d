using CowDisk.Engine.Devices;
using CowDisk.Engine.Frontends.Attach;
using Xunit;

namespace CowDisk.Tests.Frontends;

/// <summary>The session's last step: close the image only when no frontend worker can still be inside it.</summary>
public class ImageCloseTests
{
    private sealed class CountingDevice : IBlockDevice
    {
        public int Disposed;
        public long Size => 4096;
        public BlockDeviceCapabilities Capabilities => BlockDeviceCapabilities.ReadOnly;
        public void Read(long offset, Span<byte> buffer) => buffer.Clear();
        public void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None) => throw new NotSupportedException();
        public void Flush() { }
        public void Discard(long offset, long length) => throw new NotSupportedException();
        public void WriteZeroes(long offset, long length) => throw new NotSupportedException();
        public void Dispose() => Disposed++;
    }

    [Fact]
    public void A_worker_that_did_not_stop_leaves_the_image_open_and_fails_the_shutdown()
    {
        var device = new CountingDevice();
        var error = Assert.Throws<AttachException>(() => AttachSession.CloseImage(device, frontendStopped: false));
        Assert.Equal(0, device.Disposed);   // its ring memory must outlive the worker
        Assert.Contains("left open", error.Message);
    }

    [Fact]
    public void Stopped_workers_let_the_image_close()
    {
        var device = new CountingDevice();
        AttachSession.CloseImage(device, frontendStopped: true);
        Assert.Equal(1, device.Disposed);
    }
}
