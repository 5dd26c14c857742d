using CowDisk.Engine.Devices;
using CowDisk.Engine.Native;
using CowDisk.Format.Fuse;

namespace CowDisk.Engine.Frontends.Fuse;

/// <summary>
/// What a request means, whichever transport brought it (read(2) on /dev/fuse, or an io_uring queue entry):
/// serves one request against the device and writes the reply body. The transport owns the buffers and sends
/// the reply. Stateless apart from the server it serves for, so any number of threads share one.
/// </summary>
internal sealed class FuseRequestHandler(FuseServer server)
{
    /// <summary>Returned for requests the kernel expects no reply to (FORGET, INTERRUPT).</summary>
    public const int NoReply = int.MinValue;

    /// <summary>
    /// Serves one request. <paramref name="argument"/> is the opcode's own argument struct (or a LOOKUP's name);
    /// <paramref name="payload"/> is what follows it (a WRITE's data). Returns the length of the reply body
    /// written at the start of <paramref name="body"/>, a negated errno, or <see cref="NoReply"/>.
    /// </summary>
    public int Serve(in FuseInHeader header, ReadOnlySpan<byte> argument, ReadOnlySpan<byte> payload, Span<byte> body)
    {
        try
        {
            return header.Opcode switch
            {
                FuseOpcode.Init => ServeInit(argument, body),
                FuseOpcode.Lookup => ServeLookup(header, argument, body),
                FuseOpcode.GetAttr => server.Tree.AttributesOf(header.NodeId) is { } attributes ? ReplyAttributes(body, attributes) : -Errno.ENOENT,
                FuseOpcode.SetAttr => ServeSetAttr(header, argument, body),
                FuseOpcode.Open => ServeOpen(header, argument, body),
                FuseOpcode.Read => ServeRead(argument, body),
                FuseOpcode.Write => ServeWrite(argument, payload, body),
                FuseOpcode.Fsync => ServeFsync(),
                FuseOpcode.Fallocate => ServeFallocate(argument),
                FuseOpcode.StatFs => ServeStatFs(body),
                FuseOpcode.OpenDir => ServeOpenDir(header, body),
                FuseOpcode.ReadDir => ServeReadDir(argument, body),
                FuseOpcode.Flush or FuseOpcode.Release or FuseOpcode.ReleaseDir or FuseOpcode.FsyncDir or FuseOpcode.Destroy => 0,
                // FORGET: our two nodes live as long as the mount. INTERRUPT: every request is served promptly; its reply answers it.
                FuseOpcode.Forget or FuseOpcode.BatchForget or FuseOpcode.Interrupt => NoReply,
                _ => -Errno.ENOSYS,
            };
        }
        catch (Exception error)
        {
            server.Log($"fuse: {header.Opcode} failed: {error.Message}");
            return -(error switch
            {
                ArgumentException => Errno.EINVAL,
                BlockDeviceException b => b.Errno,   // ENOSPC reaches the client as ENOSPC
                _ => Errno.EIO,
            });
        }
    }

    private int ServeInit(ReadOnlySpan<byte> argument, Span<byte> body)
    {
        var init = FuseInitIn.Read(argument);
        if (init.Major != FuseServer.ProtocolMajor || init.Minor < FuseServer.MinimumProtocolMinor)
        {
            server.Log($"fuse: kernel speaks protocol {init.Major}.{init.Minor}; need {FuseServer.ProtocolMajor}.{FuseServer.MinimumProtocolMinor} or newer");
            return -Errno.EPROTO;
        }
        var reply = server.Negotiate(init);
        reply.Write(body);
        return FuseInitOut.EncodedSize;   // the transport completes the INIT once the reply is sent (see FuseWorker)
    }

    private int ServeLookup(in FuseInHeader header, ReadOnlySpan<byte> argument, Span<byte> body)
    {
        int nameEnd = argument.IndexOf((byte)0);
        var name = nameEnd >= 0 ? argument[..nameEnd] : argument;
        if (header.NodeId != FuseDiskTree.RootNode || !name.SequenceEqual(server.Tree.DiskName)) return -Errno.ENOENT;
        new FuseEntryOut(FuseDiskTree.DiskNode, 1, FuseDiskTree.AttributeLifetimeSeconds, FuseDiskTree.AttributeLifetimeSeconds,
            0, 0, server.Tree.DiskAttributes).Write(body);
        return FuseEntryOut.EncodedSize;
    }

    /// <summary>The size is the device's: a change is refused. Modes, owners and times are not kept.</summary>
    private int ServeSetAttr(in FuseInHeader header, ReadOnlySpan<byte> argument, Span<byte> body)
    {
        var change = FuseSetAttrIn.Read(argument);
        if (server.Tree.AttributesOf(header.NodeId) is not { } attributes) return -Errno.ENOENT;
        if ((change.Valid & FuseSetAttrValid.Size) != 0 && change.Size != attributes.Size)
            return -(server.ReadOnly ? Errno.EROFS : Errno.EPERM);
        return ReplyAttributes(body, attributes);
    }

    private static int ReplyAttributes(Span<byte> body, FuseAttr attributes)
    {
        new FuseAttrOut(FuseDiskTree.AttributeLifetimeSeconds, 0, attributes).Write(body);
        return FuseAttrOut.EncodedSize;
    }

    private int ServeOpen(in FuseInHeader header, ReadOnlySpan<byte> argument, Span<byte> body)
    {
        if (header.NodeId != FuseDiskTree.DiskNode) return -(header.NodeId == FuseDiskTree.RootNode ? Errno.EISDIR : Errno.ENOENT);
        var open = FuseOpenIn.Read(argument);
        if (server.ReadOnly && (open.Flags & PosixFile.O_ACCMODE) != PosixFile.O_RDONLY) return -Errno.EROFS;
        new FuseOpenOut(0, server.OpenReplyFlags).Write(body);
        return FuseOpenOut.EncodedSize;
    }

    private int ServeRead(ReadOnlySpan<byte> argument, Span<byte> body)
    {
        var read = FuseReadIn.Read(argument);
        long size = server.Device.Size;
        if (read.Offset >= (ulong)size || read.Length == 0) return 0;   // end of file
        int length = (int)Math.Min(read.Length, (ulong)size - read.Offset);
        if (length > body.Length) return -Errno.EINVAL;
        server.Device.Read((long)read.Offset, body[..length]);
        return length;
    }

    private int ServeWrite(ReadOnlySpan<byte> argument, ReadOnlySpan<byte> payload, Span<byte> body)
    {
        if (server.ReadOnly) return -Errno.EROFS;
        var write = FuseWriteIn.Read(argument);
        if (write.Length > (ulong)payload.Length) return -Errno.EINVAL;
        if (write.Offset > (ulong)server.Device.Size - write.Length || write.Length > (ulong)server.Device.Size) return -Errno.EFBIG;
        // O_SYNC includes the O_DSYNC bit; the kernel sets it per write for RWF_DSYNC too.
        var flags = (write.OpenFlags & PosixFile.O_DSYNC) != 0 ? WriteFlags.Fua : WriteFlags.None;
        server.Device.Write((long)write.Offset, payload[..(int)write.Length], flags);
        new FuseWriteOut(write.Length).Write(body);
        return FuseWriteOut.EncodedSize;
    }

    private int ServeFsync()
    {
        if (!server.ReadOnly) server.Device.Flush();
        return 0;
    }

    /// <summary>Punch hole → discard, zero range → write zeroes, plain allocation inside the disk → nothing to do.</summary>
    private int ServeFallocate(ReadOnlySpan<byte> argument)
    {
        if (server.ReadOnly) return -Errno.EROFS;
        var request = FuseFallocateIn.Read(argument);
        ulong size = (ulong)server.Device.Size;
        if (request.Offset > size || request.Length > size - request.Offset)
            return -((request.Mode & FallocateMode.KeepSize) != 0 ? Errno.EINVAL : Errno.EFBIG);
        var capabilities = server.Device.Capabilities;
        switch (request.Mode & ~FallocateMode.KeepSize)
        {
            case FallocateMode.PunchHole when (request.Mode & FallocateMode.KeepSize) != 0
                                              && (capabilities & BlockDeviceCapabilities.Discard) != 0:
                server.Device.Discard((long)request.Offset, (long)request.Length);
                return 0;
            case FallocateMode.ZeroRange when (capabilities & BlockDeviceCapabilities.WriteZeroes) != 0:
                server.Device.WriteZeroes((long)request.Offset, (long)request.Length);
                return 0;
            case FallocateMode.Allocate:
                return 0;   // every block inside the disk can already be written
            default:
                return -Errno.EOPNOTSUPP;
        }
    }

    private int ServeStatFs(Span<byte> body)
    {
        ulong blocks = (ulong)server.Device.Size / FuseDiskTree.BlockSize;
        new FuseStatFsOut(blocks, 0, 0, 1, 0, FuseDiskTree.BlockSize, 255, FuseDiskTree.BlockSize).Write(body);
        return FuseStatFsOut.EncodedSize;
    }

    private static int ServeOpenDir(in FuseInHeader header, Span<byte> body)
    {
        if (header.NodeId != FuseDiskTree.RootNode) return -Errno.ENOTDIR;
        new FuseOpenOut(0, FuseOpenReplyFlags.None).Write(body);
        return FuseOpenOut.EncodedSize;
    }

    /// <summary>Entries ".", ".." and the disk; the READDIR offset is the index of the next entry.</summary>
    private int ServeReadDir(ReadOnlySpan<byte> argument, Span<byte> body)
    {
        var read = FuseReadIn.Read(argument);
        var room = body[..(int)Math.Min(read.Length, (uint)body.Length)];
        int used = 0;
        for (ulong index = read.Offset; index < 3; index++)
        {
            var name = index switch { 0 => "."u8, 1 => ".."u8, _ => server.Tree.DiskName };
            ulong node = index == 2 ? FuseDiskTree.DiskNode : FuseDiskTree.RootNode;
            uint type = index == 2 ? FuseDirent.RegularFileType : FuseDirent.DirectoryType;
            if (used + FuseDirent.EncodedSize(name.Length) > room.Length) break;
            used += FuseDirent.Write(room[used..], node, index + 1, type, name);
        }
        return used;
    }
}
