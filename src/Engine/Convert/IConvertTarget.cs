namespace CowDisk.Engine.Convert;

/// <summary>
/// Where a conversion writes: a new file (or image) under a temporary name, renamed to the destination only
/// once complete and durable. Everything not written reads as zeros.
/// </summary>
internal interface IConvertTarget : IDisposable
{
    /// <summary>Writes must come in ascending offset order (a file laid out as it is written); else any order, from any thread.</summary>
    bool OrderedWrites => false;

    /// <summary>Writes data at offset (cluster-aligned except at the end of the disk; the writer skips all-zero clusters).</summary>
    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>Makes a range read as zeros again (only targets that take snapshots are ever asked).</summary>
    void Zero(long offset, long length) => throw new NotSupportedException("this output is written once, front to back");

    /// <summary>Makes everything durable and moves it to the destination.</summary>
    void Complete();
}
