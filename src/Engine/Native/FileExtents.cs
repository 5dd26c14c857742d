using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace CowDisk.Engine.Native;

/// <summary>What backs a byte range of a host file.</summary>
internal enum SpaceKind : byte { Hole, Unwritten, Written }

/// <summary>
/// FS_IOC_FIEMAP over one byte range: which parts are written, unwritten (allocated, reading zeros) or holes.
/// Bounded by the range (unlike SEEK_HOLE, which walks on to the next hole however far it is) and without the
/// file offset (lseek takes the descriptor's position lock).
/// </summary>
internal static partial class FileExtents
{
    // struct fiemap: fm_start u64, fm_length u64, fm_flags u32, fm_mapped_extents u32, fm_extent_count u32, fm_reserved u32;
    // then struct fiemap_extent[]: fe_logical u64, fe_physical u64, fe_length u64, fe_reserved64[2], fe_flags u32, fe_reserved[3].
    private const int HeaderSize = 32, ExtentSize = 56;
    private const int FmStart = 0, FmLength = 8, FmMappedExtents = 20, FmExtentCount = 24;
    private const int FeLogical = 0, FeLength = 16, FeFlags = 40;
    private const uint ExtentLast = 0x1, ExtentUnwritten = 0x800;
    private const uint FS_IOC_FIEMAP = 0xC020660B;   // _IOWR('f', 11, struct fiemap)

    /// <summary>Extents one call can report; a range with more is reported up to where they end.</summary>
    public const int MaxExtents = 32;
    public const int BufferSize = HeaderSize + MaxExtents * ExtentSize;

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static unsafe partial int ioctl(int fd, nuint request, byte* argument);

    /// <summary>
    /// Splits [offset, offset + length) into runs of one kind each, in order, into <paramref name="runs"/>; returns
    /// how many, or -1 where the file system cannot say (no FIEMAP). When the range holds more extents than one call
    /// reports, the last run covers the rest, of the kind of its first part. <paramref name="buffer"/>: BufferSize
    /// bytes, reused by the caller (nothing is allocated per call).
    /// </summary>
    public static unsafe int Runs(SafeFileHandle handle, long offset, long length, Span<byte> buffer, Span<(long Start, long End, SpaceKind Kind)> runs)
    {
        buffer = buffer[..BufferSize];
        buffer[..HeaderSize].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(buffer[FmStart..], (ulong)offset);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer[FmLength..], (ulong)length);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[FmExtentCount..], MaxExtents);
        fixed (byte* p = buffer)
            if (ioctl((int)handle.DangerousGetHandle(), FS_IOC_FIEMAP, p) != 0) return -1;
        int mapped = (int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(buffer[FmMappedExtents..]), MaxExtents);
        long end = offset + length, pos = offset;
        int count = 0;
        void Add(long start, long stop, SpaceKind kind, Span<(long, long, SpaceKind)> into)
        {
            if (stop <= start) return;
            if (count > 0 && into[count - 1].Item3 == kind) into[count - 1].Item2 = stop;
            else if (count < into.Length) into[count++] = (start, stop, kind);
            else into[count - 1].Item2 = stop;   // out of room: the last run takes the rest
        }
        bool last = false;
        for (int i = 0; i < mapped && pos < end; i++)
        {
            var extent = buffer.Slice(HeaderSize + i * ExtentSize, ExtentSize);
            long start = (long)BinaryPrimitives.ReadUInt64LittleEndian(extent[FeLogical..]);
            long stop = start + (long)BinaryPrimitives.ReadUInt64LittleEndian(extent[FeLength..]);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(extent[FeFlags..]);
            start = Math.Max(start, pos);
            stop = Math.Min(stop, end);
            Add(pos, start, SpaceKind.Hole, runs);
            Add(start, stop, (flags & ExtentUnwritten) != 0 ? SpaceKind.Unwritten : SpaceKind.Written, runs);
            pos = Math.Max(pos, stop);
            last = (flags & ExtentLast) != 0;
        }
        // Past the last extent: holes (or the end of the file). With every slot used and no LAST flag, unknown:
        // the run before takes it.
        if (pos < end)
        {
            if (mapped < MaxExtents || last) Add(pos, end, SpaceKind.Hole, runs);
            else if (count > 0) runs[count - 1].End = end;
            else Add(pos, end, SpaceKind.Written, runs);
        }
        return count;
    }
}
