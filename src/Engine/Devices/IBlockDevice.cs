namespace CowDisk.Engine.Devices;

/// <summary>
/// The one narrow block-device interface every layer speaks: base images, cowdisk images and frontends.
/// Byte-addressed, synchronous and thread-safe; callers may issue I/O from several threads at once.
/// The device that owns another (an overlay owning its base) disposes it.
/// </summary>
public interface IBlockDevice : IDisposable
{
    /// <summary>Virtual size in bytes.</summary>
    long Size { get; }

    /// <summary>What this device can do, derived from its layers.</summary>
    BlockDeviceCapabilities Capabilities { get; }

    /// <summary>Reads exactly buffer.Length bytes at offset; offset + length must not pass Size.</summary>
    void Read(long offset, Span<byte> buffer);

    /// <summary>Writes buffer at offset. With <see cref="WriteFlags.Fua"/> the data is durable on return.</summary>
    void Write(long offset, ReadOnlySpan<byte> buffer, WriteFlags flags = WriteFlags.None);

    /// <summary>Makes every completed write durable (data and the mappings that point at it).</summary>
    void Flush();

    /// <summary>Drops the range; it reads as zeros afterwards and its space may be reused.</summary>
    void Discard(long offset, long length);

    /// <summary>Makes the range read as zeros without writing zero bytes where the layer can avoid it.</summary>
    void WriteZeroes(long offset, long length);
}

[Flags]
public enum WriteFlags
{
    None = 0,
    /// <summary>Force unit access: durable before the call returns.</summary>
    Fua = 1,
}

[Flags]
public enum BlockDeviceCapabilities
{
    None = 0,
    ReadOnly = 1,
    Flush = 2,
    Fua = 4,
    Discard = 8,
    WriteZeroes = 16,
}
