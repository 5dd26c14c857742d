using System.Text;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// One 48-byte entry of the feature name table extension: which bitmask, which bit, and a name of up to 46 bytes
/// (zero-padded, not terminated when it has the full length). Lets a reader name a feature it does not know.
/// </summary>
public readonly record struct Qcow2FeatureNameEntry(Qcow2FeatureType Type, byte Bit, string Name)
{
    public const int EncodedSize = 48;
    public const int TypeOffset = 0;
    public const int BitOffset = 1;
    public const int NameOffset = 2;
    public const int NameSize = 46;

    public static Qcow2FeatureNameEntry Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < EncodedSize) throw new FormatException($"a qcow2 feature name entry needs {EncodedSize} bytes, got {source.Length}");
        var name = source.Slice(NameOffset, NameSize);
        int end = name.IndexOf((byte)0);
        return new((Qcow2FeatureType)source[TypeOffset], source[BitOffset], Encoding.UTF8.GetString(end < 0 ? name : name[..end]));
    }

    public void Write(Span<byte> destination)
    {
        destination[..EncodedSize].Clear();
        destination[TypeOffset] = (byte)Type;
        destination[BitOffset] = Bit;
        if (Encoding.UTF8.GetByteCount(Name) > NameSize) throw new ArgumentException($"feature name '{Name}' is longer than {NameSize} bytes");
        Encoding.UTF8.GetBytes(Name, destination.Slice(NameOffset, NameSize));
    }
}
