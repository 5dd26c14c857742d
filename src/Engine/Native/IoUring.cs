using System.Runtime.InteropServices;
using CowDisk.Format.IoUring;

namespace CowDisk.Engine.Native;

/// <summary>
/// One io_uring instance through raw system calls (no .NET package speaks io_uring): io_uring_setup, the three
/// mmapped regions, io_uring_enter. One thread owns it (SINGLE_ISSUER): it fills submission entries, submits and
/// waits, and reaps completions. The ring memory is the kernel's; this class only reads and writes its fields.
/// </summary>
internal sealed unsafe partial class IoUring : IDisposable
{
    private const long SysIoUringSetup = 425, SysIoUringEnter = 426;   // the same on x86-64 and arm64
    private const int PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1, MAP_POPULATE = 0x8000;

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall2(long number, nint a, nint b);

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall6(long number, nint a, nint b, nint c, nint d, nint e, nint f);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc")]
    private static partial int munmap(nint address, nuint length);

    private readonly int _fd;
    private readonly nint _ringMemory, _cqMemory, _sqeMemory;
    private readonly nuint _ringLength, _cqLength, _sqeLength;
    private readonly uint* _sqHead, _sqTail, _sqArray;
    private readonly uint _sqMask, _sqEntries;
    private readonly uint* _cqHead, _cqTail;
    private readonly uint _cqMask;
    private readonly byte* _cqes;
    private readonly byte* _sqes;
    private readonly int _sqeSize;
    private uint _sqLocalTail;   // entries filled but not yet published
    private bool _disposed;

    public IoUringSetupFlags Flags { get; }

    /// <summary>What the kernel says this ring can do (IORING_FEAT_*).</summary>
    public IoUringFeatures Features { get; }

    private IoUring(int fd, IoUringParams p)
    {
        _fd = fd;
        Flags = p.Flags;
        Features = p.Features;
        _sqeSize = (p.Flags & IoUringSetupFlags.Sqe128) != 0 ? IoUringSqe.Size128 : IoUringSqe.Size;
        nuint sqLength = p.SqOffsets.Array + p.SqEntries * 4;
        nuint cqLength = p.CqOffsets.Cqes + p.CqEntries * (uint)IoUringCqe.Size;
        bool single = (p.Features & IoUringFeatures.SingleMmap) != 0;
        _ringLength = single ? Math.Max(sqLength, cqLength) : sqLength;
        _ringMemory = Map(fd, _ringLength, IoUringLayout.SqRingOffset);
        if (single) { _cqMemory = _ringMemory; _cqLength = 0; }
        else { _cqLength = cqLength; _cqMemory = Map(fd, cqLength, IoUringLayout.CqRingOffset); }
        _sqeLength = p.SqEntries * (uint)_sqeSize;
        _sqeMemory = Map(fd, _sqeLength, IoUringLayout.SqesOffset);

        byte* sq = (byte*)_ringMemory, cq = (byte*)_cqMemory;
        _sqHead = (uint*)(sq + p.SqOffsets.Head);
        _sqTail = (uint*)(sq + p.SqOffsets.Tail);
        _sqArray = (uint*)(sq + p.SqOffsets.Array);
        _sqMask = *(uint*)(sq + p.SqOffsets.RingMask);
        _sqEntries = p.SqEntries;
        _cqHead = (uint*)(cq + p.CqOffsets.Head);
        _cqTail = (uint*)(cq + p.CqOffsets.Tail);
        _cqMask = *(uint*)(cq + p.CqOffsets.RingMask);
        _cqes = cq + p.CqOffsets.Cqes;
        _sqes = (byte*)_sqeMemory;
        _sqLocalTail = *_sqTail;
    }

    /// <summary>
    /// A ring of at least <paramref name="entries"/> submissions (and twice as many completions). Throws
    /// <see cref="IOException"/> with the errno where the kernel has no io_uring or refuses the flags.
    /// </summary>
    public static IoUring Create(uint entries, uint completions, IoUringSetupFlags flags)
    {
        byte* raw = stackalloc byte[IoUringParams.EncodedSize];
        var request = new IoUringParams(entries, completions, flags | IoUringSetupFlags.CqSize, IoUringFeatures.None, default, default);
        request.Write(new Span<byte>(raw, IoUringParams.EncodedSize));
        long fd = Syscall2(SysIoUringSetup, (nint)entries, (nint)raw);
        if (fd < 0) throw new IOException($"io_uring_setup failed: {Errno.Describe(Marshal.GetLastPInvokeError())}", Marshal.GetLastPInvokeError());
        try { return new IoUring((int)fd, IoUringParams.Read(new ReadOnlySpan<byte>(raw, IoUringParams.EncodedSize))); }
        catch { PosixFile.Close((int)fd); throw; }
    }

    private static nint Map(int fd, nuint length, long offset)
    {
        nint address = mmap(0, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, offset);
        if (address == -1) throw new IOException($"mmap of io_uring region {offset:x} failed: {Errno.Describe(Marshal.GetLastPInvokeError())}");
        return address;
    }

    /// <summary>Free submission slots (filled entries count until submitted).</summary>
    public uint FreeSlots => _sqEntries - (_sqLocalTail - Volatile.Read(ref *_sqHead));

    /// <summary>The next submission entry to fill (whole entry, 64 or 128 bytes), or an empty span when the ring is full.</summary>
    public Span<byte> NextEntry()
    {
        if (FreeSlots == 0) return default;
        uint index = _sqLocalTail & _sqMask;
        _sqArray[index] = index;
        _sqLocalTail++;
        return new Span<byte>(_sqes + (long)index * _sqeSize, _sqeSize);
    }

    /// <summary>Completions posted and not yet taken.</summary>
    public uint CompletionsReady => Volatile.Read(ref *_cqTail) - *_cqHead;

    /// <summary>
    /// Publishes what was filled and enters the kernel: submits it, and with minComplete &gt; 0 waits until that
    /// many completions are ready. Returns the number submitted, or a negated errno (EINTR when woken by a signal).
    /// </summary>
    public int SubmitAndWait(uint minComplete)
    {
        Volatile.Write(ref *_sqTail, _sqLocalTail);   // release: the entries before the tail that publishes them
        uint toSubmit = _sqLocalTail - Volatile.Read(ref *_sqHead);   // all the kernel has not taken, earlier leftovers too
        uint flags = IoUringLayout.EnterGetEvents;   // always: it also runs pending task work (with DEFER_TASKRUN only this does)
        long n = Syscall6(SysIoUringEnter, _fd, (nint)toSubmit, (nint)minComplete, (nint)flags, 0, 0);
        return n < 0 ? -Marshal.GetLastPInvokeError() : (int)n;
    }

    /// <summary>Takes the next completion, if one is ready.</summary>
    public bool TryTakeCompletion(out IoUringCqe completion)
    {
        uint head = *_cqHead;
        if (head == Volatile.Read(ref *_cqTail)) { completion = default; return false; }   // acquire: the entry after the tail
        completion = IoUringCqe.Read(new ReadOnlySpan<byte>(_cqes + (long)(head & _cqMask) * IoUringCqe.Size, IoUringCqe.Size));
        Volatile.Write(ref *_cqHead, head + 1);   // release: the slot back to the kernel after the copy
        return true;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        munmap(_sqeMemory, _sqeLength);
        if (_cqLength != 0) munmap(_cqMemory, _cqLength);
        munmap(_ringMemory, _ringLength);
        PosixFile.Close(_fd);   // cancels what is still in flight (FUSE entries end with the connection's teardown)
    }
}
