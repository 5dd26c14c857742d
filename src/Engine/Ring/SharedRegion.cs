using System.Runtime.InteropServices;
using CowDisk.Format.Ring;

namespace CowDisk.Engine.Ring;

/// <summary>
/// The page-aligned memory both halves share: a header page and two rings (layout in <see cref="RingLayout"/>).
/// In-process it is native memory; the layout needs nothing more than a MAP_SHARED mapping to cross processes.
/// </summary>
internal sealed unsafe class SharedRegion : IDisposable
{
    private byte* _base;

    public RingLayout Layout { get; }

    public SharedRegion(int slotCount)
    {
        if (!RingLayout.IsValidSlotCount(slotCount))
            throw new ArgumentOutOfRangeException(nameof(slotCount), $"ring slots must be a power of two from {RingLayout.MinSlots} to {RingLayout.MaxSlots}");
        Layout = new RingLayout(slotCount);
        _base = (byte*)NativeMemory.AlignedAlloc((nuint)Layout.TotalBytes, RingLayout.PageSize);
        NativeMemory.Clear(_base, (nuint)Layout.TotalBytes);
        Layout.WriteHeader(new Span<byte>(_base, RingLayout.PageSize));
    }

    public SpscRing RequestRing => new(_base + Layout.RequestRingOffset, Layout.SlotCount);
    public SpscRing ResponseRing => new(_base + Layout.ResponseRingOffset, Layout.SlotCount);

    public void Dispose()
    {
        if (_base == null) return;
        NativeMemory.AlignedFree(_base);
        _base = null;
    }
}
