using System.Buffers.Binary;
using CowDisk.Engine.Devices;
using CowDisk.Format.Nbd;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>Runs one transmission-phase request against its export and builds the reply on the work item.</summary>
internal static class NbdCommands
{
    /// <summary>A read reply is split into at most this many data / hole chunks.</summary>
    private const int MaxReadChunks = 64;
    /// <summary>
    /// All-zero stretches this size and aligned so (a cluster of a default image; partial at a read's ends) go as
    /// holes. Not 4 KiB: data with scattered zero blocks would go as dozens of small chunks, which cost the client
    /// a receive each; and a granule of data costs the scan only its first bytes.
    /// </summary>
    private const int HoleGranule = 64 << 10;
    /// <summary>Reads shorter than this go as one data chunk, unscanned.</summary>
    private const int MinScanned = 8 << 10;
    private static readonly byte[] s_zeros = new byte[1 << 20];

    [ThreadStatic] private static List<(uint Length, uint Flags)>? t_extents;

    public static void Run(NbdWork work, NbdAgreement agreement)
    {
        var request = work.Request;
        var export = agreement.Export;
        var device = export.Device;
        bool structured = agreement.Structured;
        ulong size = (ulong)device.Size;
        bool inside = request.Offset <= size && request.Length <= size - request.Offset;

        if ((request.Flags & ~AllowedFlags(request.Command, structured)) != 0)
        {
            work.Fail(NbdError.Invalid, $"command flags 0x{(ushort)request.Flags:x} are not valid for {request.Command}", structured);
            return;
        }
        // EOVERFLOW is only for what the protocol reserves it for; an over-long payload is invalid.
        if (work.PayloadDropped) { work.Fail(NbdError.Invalid, $"a write of {request.Length} bytes is over the {NbdLimits.MaxPayload}-byte limit", structured); return; }
        bool writes = request.Command is NbdCommand.Write or NbdCommand.Trim or NbdCommand.WriteZeroes;
        if (writes && export.IsReadOnly) { work.Fail(NbdError.NotPermitted, "the export is read-only", structured); return; }
        if (!inside && request.Command is not (NbdCommand.Flush or NbdCommand.Disconnect))
        {
            // The protocol: ENOSPC for writes past the end, EINVAL for reads and trims (and anything else).
            bool writesData = request.Command is NbdCommand.Write or NbdCommand.WriteZeroes;
            work.Fail(writesData ? NbdError.NoSpace : NbdError.Invalid, $"offset {request.Offset} + length {request.Length} is past the end of the export ({size} bytes)", structured);
            return;
        }
        long offset = (long)request.Offset, length = request.Length;
        bool fua = (request.Flags & NbdCommandFlags.Fua) != 0;
        try
        {
            switch (request.Command)
            {
                case NbdCommand.Read:
                    if (length > NbdLimits.MaxPayload) { work.Fail(NbdError.Invalid, $"a read of {length} bytes is over the {NbdLimits.MaxPayload}-byte limit", structured); return; }
                    device.Read(offset, work.Payload.AsSpan(0, (int)length));
                    if (structured && length == 0) work.DoneChunk();   // a data chunk carries at least one byte
                    else if (!structured) work.SimpleReadReply((int)length);
                    else ReadReply(work, offset, (int)length, dontFragment: (request.Flags & NbdCommandFlags.DontFragment) != 0);
                    return;
                case NbdCommand.Write:
                    device.Write(offset, work.Payload.AsSpan(0, (int)length), fua ? WriteFlags.Fua : WriteFlags.None);
                    break;
                case NbdCommand.Flush:
                    device.Flush();
                    break;
                case NbdCommand.Trim:
                    device.Discard(offset, length);
                    if (fua) device.Flush();
                    break;
                case NbdCommand.WriteZeroes:
                    if (!WriteZeroes(work, device, offset, length, structured)) return;
                    if (fua) device.Flush();
                    break;
                case NbdCommand.Cache:
                    break;   // advisory: data is read through the host's page cache anyway
                case NbdCommand.BlockStatus:
                    BlockStatus(work, agreement, offset, length);
                    return;
                default:
                    work.Fail(NbdError.Invalid, $"unknown command {(ushort)request.Command}", structured);
                    return;
            }
            if (structured) work.DoneChunk(); else work.SimpleReply(NbdError.None);
        }
        catch (BlockDeviceException e)
        {
            work.Fail(e.Errno == Native.Errno.ENOSPC ? NbdError.NoSpace : NbdError.Io, e.Message, structured);
        }
        catch (Exception e) when (e is Images.ImageOpenException or ArgumentException or InvalidOperationException)
        {
            work.Fail(NbdError.Invalid, e.Message, structured);
        }
    }

    /// <summary>The flags each command may carry (FUA on any; DF only on a structured READ).</summary>
    private static NbdCommandFlags AllowedFlags(NbdCommand command, bool structured) => NbdCommandFlags.Fua | command switch
    {
        NbdCommand.Read when structured => NbdCommandFlags.DontFragment,
        NbdCommand.WriteZeroes => NbdCommandFlags.NoHole | NbdCommandFlags.FastZero,
        NbdCommand.BlockStatus => NbdCommandFlags.RequestOne,
        _ => NbdCommandFlags.None,
    };

    /// <summary>WRITE_ZEROES: metadata only, unless NO_HOLE asks for the space to be provisioned (then zeros are written).</summary>
    private static bool WriteZeroes(NbdWork work, IBlockDevice device, long offset, long length, bool structured)
    {
        var flags = work.Request.Flags;
        if ((flags & NbdCommandFlags.NoHole) == 0)
        {
            device.WriteZeroes(offset, length);
            return true;
        }
        if ((flags & NbdCommandFlags.FastZero) != 0)
        {
            work.Fail(NbdError.NotSupported, "provisioned zeroes (NO_HOLE) are written, which is not faster than a write", structured);
            return false;
        }
        for (long done = 0; done < length;)
        {
            int n = (int)Math.Min(length - done, s_zeros.Length);
            device.Write(offset + done, s_zeros.AsSpan(0, n));
            done += n;
        }
        return true;
    }

    /// <summary>Structured read reply: all-zero stretches of the data go as hole chunks, the rest as data chunks.</summary>
    private static void ReadReply(NbdWork work, long offset, int length, bool dontFragment)
    {
        var data = work.Payload.AsSpan(0, length);
        if (dontFragment || length < MinScanned)
        {
            work.DataChunk((ulong)offset, 0, length, done: true);
            return;
        }
        int chunks = 0, runStart = 0;
        bool runZero = IsZero(data, 0, GranuleEnd(offset, 0, length));
        for (int at = GranuleEnd(offset, 0, length); at < length;)
        {
            int next = GranuleEnd(offset, at, length);
            bool zero = IsZero(data, at, next);
            if (zero != runZero && chunks < MaxReadChunks - 2)
            {
                Emit(work, offset, runStart, at, runZero, done: false);
                chunks++;
                runStart = at;
                runZero = zero;
            }
            else if (zero != runZero) runZero = false;   // out of chunks: the rest goes as data
            at = next;
        }
        Emit(work, offset, runStart, length, runZero, done: true);
    }

    private static int GranuleEnd(long offset, int at, int length) =>
        (int)Math.Min(length, (offset + at) / HoleGranule * HoleGranule + HoleGranule - offset);

    private static bool IsZero(ReadOnlySpan<byte> data, int start, int end) => data[start..end].IndexOfAnyExcept((byte)0) < 0;

    private static void Emit(NbdWork work, long offset, int start, int end, bool zero, bool done)
    {
        if (zero) work.HoleChunk((ulong)(offset + start), end - start, done);
        else work.DataChunk((ulong)(offset + start), start, end - start, done);
    }

    private static void BlockStatus(NbdWork work, NbdAgreement agreement, long offset, long length)
    {
        if (agreement.Contexts.Count == 0) { work.Fail(NbdError.Invalid, "no metadata context was selected (NBD_OPT_SET_META_CONTEXT)", agreement.Structured); return; }
        if (length == 0) { work.Fail(NbdError.Invalid, "block status of 0 bytes", agreement.Structured); return; }
        var extents = t_extents ??= new List<(uint, uint)>(1024);
        bool one = (work.Request.Flags & NbdCommandFlags.RequestOne) != 0;
        // Every context's payload goes into one rented buffer, filled in turn.
        var pieces = new List<(int Start, int Length)>(agreement.Contexts.Count);
        int used = 0;
        foreach (var context in agreement.Contexts)
        {
            extents.Clear();
            if (context.Bitmap is null) NbdExtents.Allocation(agreement.Export.Device, offset, offset + length, extents);
            else NbdExtents.Dirty(agreement.Export.Changed(context.Bitmap), offset, offset + length, extents);
            int count = one ? 1 : Math.Min(extents.Count, NbdLimits.MaxExtentsPerChunk);
            if (one && extents[0].Length > length) extents[0] = ((uint)length, extents[0].Flags);
            int bytes = 4 + 8 * count;
            Grow(work, used + bytes);
            var span = work.Extra.AsSpan(used, bytes);
            BinaryPrimitives.WriteUInt32BigEndian(span, context.Id);
            for (int i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt32BigEndian(span[(4 + 8 * i)..], extents[i].Length);
                BinaryPrimitives.WriteUInt32BigEndian(span[(8 + 8 * i)..], extents[i].Flags);
            }
            pieces.Add((used, bytes));
            used += bytes;
        }
        for (int i = 0; i < pieces.Count; i++) work.StatusChunk(pieces[i].Start, pieces[i].Length, done: i == pieces.Count - 1);
    }

    private static void Grow(NbdWork work, int needed)
    {
        if (work.Extra is { } extra && extra.Length >= needed) return;
        var bigger = work.Connection.Server.Buffers.Rent(Math.Max(needed, 4096));
        if (work.Extra is { } old)
        {
            old.CopyTo(bigger, 0);
            work.Connection.Server.Buffers.Return(old);
        }
        work.Extra = bigger;
    }
}
