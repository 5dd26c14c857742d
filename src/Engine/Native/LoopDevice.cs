using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>
/// A loop device bound to a backing file (linux/loop.h). The binding sets LO_FLAGS_AUTOCLEAR and this object
/// keeps a descriptor open, so if the owning process dies the kernel releases the device as soon as its last
/// other user closes it.
/// </summary>
internal sealed unsafe partial class LoopDevice : IDisposable
{
    private const ulong LOOP_SET_FD = 0x4C00, LOOP_CLR_FD = 0x4C01, LOOP_SET_STATUS64 = 0x4C04;
    private const ulong LOOP_SET_DIRECT_IO = 0x4C08, LOOP_CONFIGURE = 0x4C0A, LOOP_CTL_GET_FREE = 0x4C82;
    private const uint LO_FLAGS_READ_ONLY = 1, LO_FLAGS_AUTOCLEAR = 4, LO_FLAGS_DIRECT_IO = 16;

    // struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
    private const int ConfigSize = 304, ConfigFdOffset = 0, ConfigInfoOffset = 8;
    // struct loop_info64: lo_flags at 52, lo_file_name[64] at 56; 232 bytes in all.
    private const int InfoSize = 232, InfoFlagsOffset = 52, InfoFileNameOffset = 56, InfoFileNameLength = 64;
    private const int BindAttempts = 8;

    public const string ControlPath = "/dev/loop-control";

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlPointer(int fd, ulong request, void* argument);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlValue(int fd, ulong request, nint argument);

    private SafeFileHandle? _handle;

    public int Number { get; }
    public string DevicePath => DevicePathOf(Number);
    /// <summary>Whether the kernel serves this device with direct I/O on the backing file (sysfs loop/dio).</summary>
    public bool DirectIo { get; }
    /// <summary>Which ioctl bound it: LOOP_CONFIGURE, or LOOP_SET_FD on kernels without it.</summary>
    public string BindMethod { get; }

    private LoopDevice(int number, SafeFileHandle handle, bool directIo, string bindMethod)
    {
        Number = number;
        _handle = handle;
        DirectIo = directIo;
        BindMethod = bindMethod;
    }

    public static string DevicePathOf(int number) => $"/dev/loop{number}";

    /// <summary>Binds a free loop device to backingPath, asking for direct I/O when directIo is set.</summary>
    public static LoopDevice Bind(string backingPath, bool readOnly, bool directIo)
    {
        if (!File.Exists(ControlPath)) throw new LoopUnavailableException($"no {ControlPath} (load the loop module: modprobe loop)");
        using var backing = PosixFile.Open(backingPath, readOnly ? PosixFile.O_RDONLY : PosixFile.O_RDWR);
        using var control = PosixFile.Open(ControlPath, PosixFile.O_RDWR);
        for (int attempt = 0; attempt < BindAttempts; attempt++)
        {
            int number = IoctlValue((int)control.DangerousGetHandle(), LOOP_CTL_GET_FREE, 0);
            if (number < 0)
                throw new LoopUnavailableException($"no free loop device: {Errno.Describe(Marshal.GetLastPInvokeError())}");
            var device = PosixFile.Open(DevicePathOf(number), readOnly ? PosixFile.O_RDONLY : PosixFile.O_RDWR);
            int errno = TryConfigure(device, backing, backingPath, readOnly, directIo, out string method);
            if (errno == 0)
            {
                bool dio = ReadDirectIoFlag(number);
                if (directIo && !dio) dio = IoctlValue((int)device.DangerousGetHandle(), LOOP_SET_DIRECT_IO, 1) == 0 && ReadDirectIoFlag(number);
                return new LoopDevice(number, device, dio, method);
            }
            device.Dispose();
            if (errno != Errno.EBUSY) throw new IOException($"cannot bind {DevicePathOf(number)} to {backingPath}: {Errno.Describe(errno)}");
            // Another process took the free device between GET_FREE and our bind: ask again.
        }
        throw new LoopUnavailableException("no free loop device: every candidate was taken concurrently");
    }

    private static int TryConfigure(SafeFileHandle device, SafeFileHandle backing, string backingPath, bool readOnly,
        bool directIo, out string method)
    {
        int deviceFd = (int)device.DangerousGetHandle(), backingFd = (int)backing.DangerousGetHandle();
        uint flags = LO_FLAGS_AUTOCLEAR | (readOnly ? LO_FLAGS_READ_ONLY : 0) | (directIo ? LO_FLAGS_DIRECT_IO : 0);
        byte* config = stackalloc byte[ConfigSize];
        new Span<byte>(config, ConfigSize).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(config + ConfigFdOffset, 4), (uint)backingFd);
        WriteInfo(new Span<byte>(config + ConfigInfoOffset, InfoSize), flags, backingPath);
        method = "LOOP_CONFIGURE";
        if (IoctlPointer(deviceFd, LOOP_CONFIGURE, config) == 0) return 0;
        int errno = Marshal.GetLastPInvokeError();
        if (errno != Errno.EINVAL && errno != Errno.ENOTTY) return errno;

        // Kernels before 5.8: bind, then set flags and name, then ask for direct I/O separately.
        method = "LOOP_SET_FD";
        if (IoctlValue(deviceFd, LOOP_SET_FD, backingFd) != 0) return Marshal.GetLastPInvokeError();
        byte* info = stackalloc byte[InfoSize];
        var infoSpan = new Span<byte>(info, InfoSize);
        infoSpan.Clear();
        WriteInfo(infoSpan, LO_FLAGS_AUTOCLEAR, backingPath);
        IoctlPointer(deviceFd, LOOP_SET_STATUS64, info);
        if (directIo) IoctlValue(deviceFd, LOOP_SET_DIRECT_IO, 1);
        return 0;
    }

    private static void WriteInfo(Span<byte> info, uint flags, string backingPath)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(info[InfoFlagsOffset..], flags);
        int length = Math.Min(Encoding.UTF8.GetByteCount(backingPath), InfoFileNameLength - 1);
        Encoding.UTF8.GetBytes(backingPath).AsSpan(0, length).CopyTo(info[InfoFileNameOffset..]);
    }

    private static bool ReadDirectIoFlag(int number) => ReadSysfs(number, "dio") == "1";

    /// <summary>The backing file a loop device is bound to, or null when it is free.</summary>
    public static string? BackingFileOf(int number) => ReadSysfs(number, "backing_file");

    private static string? ReadSysfs(int number, string attribute)
    {
        try { return File.ReadAllText($"/sys/block/loop{number}/loop/{attribute}").Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Unbinds the device and waits until the kernel has released the backing file. If someone still has the
    /// device open, the kernel unbinds it when they close it (autoclear); returns false when that did not
    /// happen within timeout.
    /// </summary>
    public bool Detach(TimeSpan timeout)
    {
        if (_handle is null) return true;
        IoctlValue((int)_handle.DangerousGetHandle(), LOOP_CLR_FD, 0);
        _handle.Dispose(); // the unbind completes when the last opener (normally us) closes
        _handle = null;
        return WaitUntilFree(Number, timeout);
    }

    /// <summary>Unbinds a device left behind by a dead daemon, only if it is still bound to expectedBacking.</summary>
    public static bool DetachIfBoundTo(int number, string expectedBacking, TimeSpan timeout)
    {
        string? backing = BackingFileOf(number);
        if (backing is null || !SameBacking(backing, expectedBacking)) return true;
        int fd = PosixFile.TryOpen(DevicePathOf(number), PosixFile.O_RDONLY);
        if (fd >= 0)
        {
            IoctlValue(fd, LOOP_CLR_FD, 0);
            PosixFile.Close(fd);
        }
        return WaitUntilFree(number, timeout) || !SameBacking(BackingFileOf(number) ?? "", expectedBacking);
    }

    // sysfs appends " (deleted)" when the backing file's name is gone, as with a lazily unmounted FUSE file.
    private static bool SameBacking(string reported, string expected) =>
        reported == expected || reported == expected + " (deleted)";

    private static bool WaitUntilFree(int number, TimeSpan timeout)
    {
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (BackingFileOf(number) is not null)
        {
            if (Environment.TickCount64 > deadline) return false;
            Thread.Sleep(20);
        }
        return true;
    }

    /// <summary>Whether someone holds the device exclusively (a mounted file system does).</summary>
    public static bool IsClaimed(int number)
    {
        int fd = PosixFile.TryOpen(DevicePathOf(number), PosixFile.O_RDONLY | PosixFile.O_EXCL);
        if (fd >= 0) { PosixFile.Close(fd); return false; }
        return -fd == Errno.EBUSY;
    }

    public void Dispose() => _handle?.Dispose();
}

/// <summary>The machine offers no loop device to bind (module missing or all in use).</summary>
internal sealed class LoopUnavailableException(string message) : IOException(message);
