using System.Runtime.InteropServices;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Native;
using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// One server thread: reads a request from /dev/fuse, serves it against the device, writes the reply.
/// Its two buffers are allocated once; a request allocates nothing. The buffers are placed so that WRITE
/// payloads and READ reply payloads start on a 4 KiB boundary, which lets the device use them for O_DIRECT.
/// </summary>
internal sealed unsafe class FuseWorker : IDisposable
{
    private const int Alignment = 4096;
    private const int WritePayloadOffset = FuseInHeader.EncodedSize + FuseWriteIn.EncodedSize;
    // Reply room beyond the largest READ payload, for every other reply.
    private const int ReplySlack = 4096;

    private readonly FuseServer _server;
    private readonly int _fd;
    private readonly byte* _requestAllocation;
    private readonly byte* _replyAllocation;
    private readonly byte* _request;
    private readonly byte* _reply;
    private readonly int _requestCapacity;
    private readonly int _replyCapacity;

    public FuseWorker(FuseServer server, int fd, int maxWrite)
    {
        _server = server;
        _fd = fd;
        // The kernel refuses reads into buffers smaller than header + write_in + max_write.
        _requestCapacity = WritePayloadOffset + maxWrite + Alignment;
        _replyCapacity = FuseOutHeader.EncodedSize + maxWrite + ReplySlack;
        _requestAllocation = (byte*)NativeMemory.AlignedAlloc((nuint)(_requestCapacity + Alignment), Alignment);
        _replyAllocation = (byte*)NativeMemory.AlignedAlloc((nuint)(_replyCapacity + Alignment), Alignment);
        _request = _requestAllocation + Alignment - WritePayloadOffset;
        _reply = _replyAllocation + Alignment - FuseOutHeader.EncodedSize;
    }

    private Span<byte> ReplyPayload => new(_reply + FuseOutHeader.EncodedSize, _replyCapacity - FuseOutHeader.EncodedSize);

    /// <summary>Serves requests until the connection ends (unmount or abort).</summary>
    public void Run()
    {
        ProcessControl.MarkThreadAsIoFlusher();
        while (true)
        {
            nint n = PosixFile.Read(_fd, _request, _requestCapacity);
            if (n < 0)
            {
                int errno = (int)-n;
                if (errno is Errno.EINTR or Errno.EAGAIN or Errno.ENOENT) continue; // ENOENT: request interrupted before we read it
                if (errno != Errno.ENODEV) _server.Log($"fuse: read from /dev/fuse failed: {Errno.Describe(errno)}");
                return; // ENODEV: unmounted or aborted
            }
            if (n < FuseInHeader.EncodedSize) continue;
            Serve(new ReadOnlySpan<byte>(_request, (int)n));
        }
    }

    private void Serve(ReadOnlySpan<byte> request)
    {
        var header = FuseInHeader.Read(request);
        int end = (int)Math.Min(header.Length, (uint)request.Length);
        var argument = request[FuseInHeader.EncodedSize..end];
        try
        {
            switch (header.Opcode)
            {
                case FuseOpcode.Init: ServeInit(header, argument); break;
                case FuseOpcode.Lookup: ServeLookup(header, argument); break;
                case FuseOpcode.GetAttr: ServeGetAttr(header); break;
                case FuseOpcode.SetAttr: ServeSetAttr(header, argument); break;
                case FuseOpcode.Open: ServeOpen(header, argument); break;
                case FuseOpcode.Read: ServeRead(header, argument); break;
                case FuseOpcode.Write: ServeWrite(header, argument); break;
                case FuseOpcode.Fsync: ServeFsync(header); break;
                case FuseOpcode.Fallocate: ServeFallocate(header, argument); break;
                case FuseOpcode.StatFs: ServeStatFs(header); break;
                case FuseOpcode.OpenDir: ServeOpenDir(header); break;
                case FuseOpcode.ReadDir: ServeReadDir(header, argument); break;
                case FuseOpcode.Flush:
                case FuseOpcode.Release:
                case FuseOpcode.ReleaseDir:
                case FuseOpcode.FsyncDir:
                case FuseOpcode.Destroy:
                    ReplyEmpty(header.Unique); break;
                case FuseOpcode.Forget:
                case FuseOpcode.BatchForget:
                    break; // the kernel expects no reply; our two nodes live as long as the mount
                case FuseOpcode.Interrupt:
                    break; // every request is served synchronously and promptly; the original reply answers it
                default:
                    ReplyError(header.Unique, Errno.ENOSYS); break;
            }
        }
        catch (Exception error)
        {
            _server.Log($"fuse: {header.Opcode} failed: {error.Message}");
            ReplyError(header.Unique, error switch
            {
                ArgumentException => Errno.EINVAL,
                Devices.BlockDeviceException b => b.Errno,   // ENOSPC reaches the client as ENOSPC
                _ => Errno.EIO,
            });
        }
    }

    private void ServeInit(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        var init = FuseInitIn.Read(argument);
        if (init.Major != FuseServer.ProtocolMajor || init.Minor < FuseServer.MinimumProtocolMinor)
        {
            _server.Log($"fuse: kernel speaks protocol {init.Major}.{init.Minor}; need {FuseServer.ProtocolMajor}.{FuseServer.MinimumProtocolMinor} or newer");
            ReplyError(header.Unique, Errno.EPROTO);
            _server.CompleteInit(null);
            return;
        }
        var reply = _server.Negotiate(init);
        reply.Write(ReplyPayload);
        Reply(header.Unique, FuseInitOut.EncodedSize);
        _server.CompleteInit(reply);
    }

    private void ServeLookup(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        int nameEnd = argument.IndexOf((byte)0);
        var name = nameEnd >= 0 ? argument[..nameEnd] : argument;
        if (header.NodeId != FuseDiskTree.RootNode || !name.SequenceEqual(_server.Tree.DiskName))
        {
            ReplyError(header.Unique, Errno.ENOENT);
            return;
        }
        new FuseEntryOut(FuseDiskTree.DiskNode, 1, FuseDiskTree.AttributeLifetimeSeconds, FuseDiskTree.AttributeLifetimeSeconds,
            0, 0, _server.Tree.DiskAttributes).Write(ReplyPayload);
        Reply(header.Unique, FuseEntryOut.EncodedSize);
    }

    private void ServeGetAttr(FuseInHeader header)
    {
        if (_server.Tree.AttributesOf(header.NodeId) is not { } attributes)
        {
            ReplyError(header.Unique, Errno.ENOENT);
            return;
        }
        ReplyAttributes(header.Unique, attributes);
    }

    /// <summary>The size is the device's: a change is refused. Modes, owners and times are not kept.</summary>
    private void ServeSetAttr(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        var change = FuseSetAttrIn.Read(argument);
        if (_server.Tree.AttributesOf(header.NodeId) is not { } attributes)
        {
            ReplyError(header.Unique, Errno.ENOENT);
            return;
        }
        if ((change.Valid & FuseSetAttrValid.Size) != 0 && change.Size != attributes.Size)
        {
            ReplyError(header.Unique, _server.ReadOnly ? Errno.EROFS : Errno.EPERM);
            return;
        }
        ReplyAttributes(header.Unique, attributes);
    }

    private void ReplyAttributes(ulong unique, FuseAttr attributes)
    {
        new FuseAttrOut(FuseDiskTree.AttributeLifetimeSeconds, 0, attributes).Write(ReplyPayload);
        Reply(unique, FuseAttrOut.EncodedSize);
    }

    private void ServeOpen(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        if (header.NodeId != FuseDiskTree.DiskNode)
        {
            ReplyError(header.Unique, header.NodeId == FuseDiskTree.RootNode ? Errno.EISDIR : Errno.ENOENT);
            return;
        }
        var open = FuseOpenIn.Read(argument);
        if (_server.ReadOnly && (open.Flags & PosixFile.O_ACCMODE) != PosixFile.O_RDONLY)
        {
            ReplyError(header.Unique, Errno.EROFS);
            return;
        }
        new FuseOpenOut(0, _server.OpenReplyFlags).Write(ReplyPayload);
        Reply(header.Unique, FuseOpenOut.EncodedSize);
    }

    private void ServeRead(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        var read = FuseReadIn.Read(argument);
        long size = _server.Device.Size;
        if (read.Offset >= (ulong)size || read.Length == 0)
        {
            Reply(header.Unique, 0); // end of file
            return;
        }
        int length = (int)Math.Min(read.Length, (ulong)size - read.Offset);
        var payload = ReplyPayload;
        if (length > payload.Length)
        {
            ReplyError(header.Unique, Errno.EINVAL);
            return;
        }
        _server.Device.Read((long)read.Offset, payload[..length]);
        Reply(header.Unique, length);
    }

    private void ServeWrite(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        if (_server.ReadOnly)
        {
            ReplyError(header.Unique, Errno.EROFS);
            return;
        }
        var write = FuseWriteIn.Read(argument);
        var data = argument.Slice(FuseWriteIn.EncodedSize, (int)write.Length);
        if (write.Offset > (ulong)_server.Device.Size - write.Length || write.Length > (ulong)_server.Device.Size)
        {
            ReplyError(header.Unique, Errno.EFBIG);
            return;
        }
        // O_SYNC includes the O_DSYNC bit; the kernel sets it per write for RWF_DSYNC too.
        var flags = (write.OpenFlags & PosixFile.O_DSYNC) != 0 ? WriteFlags.Fua : WriteFlags.None;
        _server.Device.Write((long)write.Offset, data, flags);
        new FuseWriteOut(write.Length).Write(ReplyPayload);
        Reply(header.Unique, FuseWriteOut.EncodedSize);
    }

    private void ServeFsync(FuseInHeader header)
    {
        if (!_server.ReadOnly) _server.Device.Flush();
        ReplyEmpty(header.Unique);
    }

    /// <summary>Punch hole → discard, zero range → write zeroes, plain allocation inside the disk → nothing to do.</summary>
    private void ServeFallocate(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        if (_server.ReadOnly)
        {
            ReplyError(header.Unique, Errno.EROFS);
            return;
        }
        var request = FuseFallocateIn.Read(argument);
        ulong size = (ulong)_server.Device.Size;
        if (request.Offset > size || request.Length > size - request.Offset)
        {
            ReplyError(header.Unique, (request.Mode & FallocateMode.KeepSize) != 0 ? Errno.EINVAL : Errno.EFBIG);
            return;
        }
        var capabilities = _server.Device.Capabilities;
        var mode = request.Mode & ~FallocateMode.KeepSize;
        switch (mode)
        {
            case FallocateMode.PunchHole when (request.Mode & FallocateMode.KeepSize) != 0
                                              && (capabilities & BlockDeviceCapabilities.Discard) != 0:
                _server.Device.Discard((long)request.Offset, (long)request.Length);
                break;
            case FallocateMode.ZeroRange when (capabilities & BlockDeviceCapabilities.WriteZeroes) != 0:
                _server.Device.WriteZeroes((long)request.Offset, (long)request.Length);
                break;
            case FallocateMode.Allocate:
                break; // every block inside the disk can already be written
            default:
                ReplyError(header.Unique, Errno.EOPNOTSUPP);
                return;
        }
        ReplyEmpty(header.Unique);
    }

    private void ServeStatFs(FuseInHeader header)
    {
        ulong blocks = (ulong)_server.Device.Size / FuseDiskTree.BlockSize;
        new FuseStatFsOut(blocks, 0, 0, 1, 0, FuseDiskTree.BlockSize, 255, FuseDiskTree.BlockSize).Write(ReplyPayload);
        Reply(header.Unique, FuseStatFsOut.EncodedSize);
    }

    private void ServeOpenDir(FuseInHeader header)
    {
        if (header.NodeId != FuseDiskTree.RootNode)
        {
            ReplyError(header.Unique, Errno.ENOTDIR);
            return;
        }
        new FuseOpenOut(0, FuseOpenReplyFlags.None).Write(ReplyPayload);
        Reply(header.Unique, FuseOpenOut.EncodedSize);
    }

    /// <summary>Entries ".", ".." and the disk; the READDIR offset is the index of the next entry.</summary>
    private void ServeReadDir(FuseInHeader header, ReadOnlySpan<byte> argument)
    {
        var read = FuseReadIn.Read(argument);
        var payload = ReplyPayload[..(int)Math.Min(read.Length, (uint)ReplyPayload.Length)];
        int used = 0;
        for (ulong index = read.Offset; index < 3; index++)
        {
            var name = index switch { 0 => "."u8, 1 => ".."u8, _ => _server.Tree.DiskName };
            ulong node = index == 2 ? FuseDiskTree.DiskNode : FuseDiskTree.RootNode;
            uint type = index == 2 ? FuseDirent.RegularFileType : FuseDirent.DirectoryType;
            if (used + FuseDirent.EncodedSize(name.Length) > payload.Length) break;
            used += FuseDirent.Write(payload[used..], node, index + 1, type, name);
        }
        Reply(header.Unique, used);
    }

    private void ReplyEmpty(ulong unique) => Reply(unique, 0);

    private void Reply(ulong unique, int payloadLength)
    {
        int length = FuseOutHeader.EncodedSize + payloadLength;
        new FuseOutHeader((uint)length, 0, unique).Write(new Span<byte>(_reply, FuseOutHeader.EncodedSize));
        Send(length);
    }

    private void ReplyError(ulong unique, int errno)
    {
        new FuseOutHeader(FuseOutHeader.EncodedSize, -errno, unique).Write(new Span<byte>(_reply, FuseOutHeader.EncodedSize));
        Send(FuseOutHeader.EncodedSize);
    }

    private void Send(int length)
    {
        nint n = PosixFile.Write(_fd, _reply, length);
        // ENOENT: the request was interrupted and is gone; ENODEV: the connection ended meanwhile.
        if (n < 0 && -n != Errno.ENOENT && -n != Errno.ENODEV)
            _server.Log($"fuse: reply failed: {Errno.Describe((int)-n)}");
    }

    public void Dispose()
    {
        NativeMemory.AlignedFree(_requestAllocation);
        NativeMemory.AlignedFree(_replyAllocation);
    }
}
