namespace CowDisk.Engine.Storage;

/// <summary>
/// One persisted file as the engine sees it: the data file, LiteDB's data and log, or a raw device. Every
/// byte the engine persists goes through here, so a test can record writes and barriers and replay a crash.
/// Positional and thread-safe. Failures are <see cref="StorageException"/>s carrying an errno.
/// </summary>
public interface IStorageFile : IDisposable
{
    string Path { get; }
    bool ReadOnly { get; }
    long Length { get; }

    /// <summary>Reads up to buffer.Length bytes at offset; fewer only at the end of the file.</summary>
    int Read(long offset, Span<byte> buffer);

    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>
    /// Reads several ranges of the file into one buffer; what lies past the end of the file reads as zeros. A file
    /// may have them all in flight at once (direct I/O, where each waits on the disk); this one reads them in turn.
    /// </summary>
    void ReadPieces(Span<byte> buffer, ReadOnlySpan<StoragePiece> pieces) => ReadInTurn(this, buffer, pieces);

    /// <summary>Reads the pieces one after another with <see cref="Read"/>, zeros past the end of the file.</summary>
    static void ReadInTurn(IStorageFile file, Span<byte> buffer, ReadOnlySpan<StoragePiece> pieces)
    {
        foreach (var piece in pieces)
        {
            var part = buffer.Slice(piece.BufferOffset, piece.Length);
            part[file.Read(piece.FileOffset, part)..].Clear();
        }
    }

    /// <summary>
    /// Writes several ranges of the buffer at their places in the file. A file may have them all in flight at once
    /// (direct I/O, where each waits on the disk); this one writes them in turn.
    /// </summary>
    void WritePieces(ReadOnlySpan<byte> data, ReadOnlySpan<StoragePiece> pieces) => WriteInTurn(this, data, pieces);

    /// <summary>Writes the pieces one after another with <see cref="Write"/>.</summary>
    static void WriteInTurn(IStorageFile file, ReadOnlySpan<byte> data, ReadOnlySpan<StoragePiece> pieces)
    {
        foreach (var piece in pieces) file.Write(piece.FileOffset, data.Slice(piece.BufferOffset, piece.Length));
    }

    /// <summary>Durability barrier: every write (and length change) completed before the call survives power loss.</summary>
    void Flush();

    void SetLength(long length);

    /// <summary>
    /// A hint: start writing what is dirty to the disk without waiting (a long copy streams out as it goes instead
    /// of leaving everything to its last <see cref="Flush"/>). Never a barrier; storage without it does nothing.
    /// </summary>
    void StartWriteback() { }

    /// <summary>
    /// Gives the range host space ahead of its writes (fallocate, growing the file if the range passes its end;
    /// the new bytes read as zeros, existing data is kept): false where the storage cannot (no room, unsupported).
    /// </summary>
    bool Preallocate(long offset, long length) => false;

    /// <summary>Bytes still free for this file to grow into (the file system's free space); -1 where unknown.</summary>
    long FreeSpace => -1;

    /// <summary>Gives the range's space back (it reads as zeros); false where the storage cannot.</summary>
    bool PunchHole(long offset, long length);

    /// <summary>
    /// Makes sure writes below <paramref name="length"/> need no new space (fallocate, size unchanged): false when
    /// the storage has no room for it. Storage that cannot reserve says true (nothing is promised).
    /// </summary>
    bool Reserve(long length);

    /// <summary>Advisory whole-file lock (one writer, or many readers); false if another holder conflicts.</summary>
    bool TryLock(bool exclusive);
}
