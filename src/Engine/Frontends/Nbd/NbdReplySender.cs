using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// Sends replies' segments (headers and data, in place) with one sendmsg for as many as are gathered: a 256 KiB
/// read reply is one system call and no copy in user space, where a stream would take one write per segment or
/// a copy through a staging buffer. For plain sockets only (TLS needs the stream). Every segment's array must be
/// pinned (the payload pool's and <see cref="NbdWork"/>'s are): their addresses go to the kernel unpinned.
/// </summary>
internal sealed unsafe partial class NbdReplySender(Socket socket)
{
    /// <summary>IOV_MAX: the kernel refuses more in one call.</summary>
    public const int MaxSegments = 1024;
    private const int MsgNoSignal = 0x4000;
    private const int EINTR = 4, EAGAIN = 11;

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint sendmsg(nint fd, MsgHdr* message, int flags);

    private readonly IoVec[] _iov = GC.AllocateArray<IoVec>(MaxSegments, pinned: true);
    private int _count;

    public int Count => _count;
    public bool Full => _count == MaxSegments;

    /// <summary>Queues bytes [offset, offset + length) of a pinned array; false when the batch is full.</summary>
    public bool Add(byte[] array, int offset, int length)
    {
        if (length == 0) return true;
        if (_count == MaxSegments) return false;
        _iov[_count++] = new IoVec { Base = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array)) + offset, Length = (nuint)length };
        return true;
    }

    /// <summary>
    /// A client must take at least this much of a batch per send timeout. SO_SNDTIMEO bounds one sendmsg only, and
    /// a call that moved a few bytes returns them instead of failing: a client that reads a byte now and then would
    /// otherwise hold its connection and its replies' buffers for ever.
    /// </summary>
    public const int ProgressBytes = 64 << 10;

    /// <summary>
    /// Sends the whole batch and clears it. Throws when the client takes less than <see cref="ProgressBytes"/> in a
    /// send timeout (the socket's SendTimeout; none: waits as long as it moves).
    /// </summary>
    public void Send()
    {
        bool added = false;
        long since = 0, moved = 0, timeoutTicks = -1;   // the timeout is read (a system call) only once a send comes short
        var handle = socket.SafeHandle;
        try
        {
            handle.DangerousAddRef(ref added);
            fixed (IoVec* iov = _iov)
            {
                int first = 0;
                while (first < _count)
                {
                    var message = new MsgHdr { Iov = iov + first, IovLength = (nuint)(_count - first) };
                    // Blocking (SO_SNDTIMEO bounds the wait): a short count means the timeout or a signal cut it off.
                    nint n = sendmsg(handle.DangerousGetHandle(), &message, MsgNoSignal);
                    if (n < 0)
                    {
                        int errno = Marshal.GetLastPInvokeError();
                        if (errno == EINTR) continue;
                        throw new IOException(errno == EAGAIN ? "the client has not read its replies for the send timeout" : $"sendmsg: {Native.Errno.Describe(errno)}");
                    }
                    long sent = n;
                    // Step past what went: whole segments, then into the first one that went in part.
                    for (; first < _count && n >= (nint)iov[first].Length; first++) n -= (nint)iov[first].Length;
                    if (first < _count)
                    {
                        iov[first].Base += n;
                        iov[first].Length -= (nuint)n;
                        long now = Stopwatch.GetTimestamp();
                        if (timeoutTicks < 0)
                        {
                            timeoutTicks = socket.SendTimeout > 0 ? socket.SendTimeout * Stopwatch.Frequency / 1000 : 0;
                            since = now;
                        }
                        moved += sent;
                        if (moved >= ProgressBytes) { moved = 0; since = now; }
                        else if (timeoutTicks > 0 && now - since >= timeoutTicks)
                            throw new IOException("the client has not read its replies for the send timeout");
                    }
                }
            }
        }
        finally
        {
            if (added) handle.DangerousRelease();
            _count = 0;
        }
    }
}
