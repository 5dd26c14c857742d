namespace CowDisk.Format.Qcow2;

/// <summary>A 128-bit extended L2 entry: the standard 64-bit entry (bit 0 unused) followed by its subcluster bitmap.</summary>
public readonly record struct Qcow2ExtendedL2Entry(Qcow2L2Entry Entry, Qcow2SubclusterBitmap Bitmap)
{
    public const int EncodedSize = 16;
    public const int EntryOffset = 0;
    public const int BitmapOffset = 8;

    public static Qcow2ExtendedL2Entry Read(ReadOnlySpan<byte> source) =>
        new(Qcow2L2Entry.Read(source[EntryOffset..]), Qcow2SubclusterBitmap.Read(source[BitmapOffset..]));

    public void Write(Span<byte> destination)
    {
        Entry.Write(destination[EntryOffset..]);
        Bitmap.Write(destination[BitmapOffset..]);
    }
}
