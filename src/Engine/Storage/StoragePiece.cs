namespace CowDisk.Engine.Storage;

/// <summary>One range of a many-range read or write: <see cref="Length"/> bytes at <see cref="FileOffset"/> in the file, at <see cref="BufferOffset"/> in the buffer.</summary>
public readonly record struct StoragePiece(long FileOffset, int BufferOffset, int Length);
