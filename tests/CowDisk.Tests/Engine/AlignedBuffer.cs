using System.Runtime.InteropServices;

namespace CowDisk.Tests.Engine;

/// <summary>Native memory that starts on a page, as the FUSE transports' buffers do: direct I/O can use it in place.</summary>
public sealed unsafe class AlignedBuffer(int length) : IDisposable
{
    private readonly byte* _memory = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(length, 1), 4096);

    public Span<byte> Span => new(_memory, length);

    public void Dispose() => NativeMemory.AlignedFree(_memory);
}
