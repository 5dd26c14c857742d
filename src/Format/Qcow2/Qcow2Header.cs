using System.Buffers.Binary;

namespace CowDisk.Format.Qcow2;

/// <summary>
/// The qcow2 file header at byte 0 (QEMU docs/interop/qcow2.txt, "Header"), big-endian. Version 2 headers are
/// exactly 72 bytes; version 3 headers are <see cref="HeaderLength"/> bytes (at least 104, a multiple of 8) and add
/// the feature bitmasks, refcount_order and, from 112 bytes on, compression_type at byte 104.
/// Values are kept as stored: checking them against each other is the reader's job, not this record's.
/// </summary>
public readonly record struct Qcow2Header(
    uint Version, ulong BackingFileOffset, uint BackingFileSize, uint ClusterBits, ulong Size, Qcow2CryptMethod CryptMethod,
    uint L1Size, ulong L1TableOffset, ulong RefcountTableOffset, uint RefcountTableClusters, uint SnapshotCount,
    ulong SnapshotsOffset, Qcow2IncompatibleFeatures IncompatibleFeatures = Qcow2IncompatibleFeatures.None,
    Qcow2CompatibleFeatures CompatibleFeatures = Qcow2CompatibleFeatures.None,
    Qcow2AutoclearFeatures AutoclearFeatures = Qcow2AutoclearFeatures.None,
    uint RefcountOrder = Qcow2Header.Version2RefcountOrder, uint HeaderLength = Qcow2Header.Version2Size,
    Qcow2CompressionType CompressionType = Qcow2CompressionType.Zlib)
{
    /// <summary>"QFI\xfb".</summary>
    public const uint Magic = 0x514649FB;
    /// <summary>A version 2 header's length, and the part every version shares.</summary>
    public const int Version2Size = 72;
    /// <summary>The shortest version 3 header (through header_length).</summary>
    public const int Version3MinSize = 104;
    /// <summary>The shortest version 3 header that has compression_type (104 rounded up to a multiple of 8).</summary>
    public const int CompressionTypeMinSize = 112;
    /// <summary>Version 2 images always have 16-bit refcounts.</summary>
    public const uint Version2RefcountOrder = 4;

    public const int MagicOffset = 0;
    public const int VersionOffset = 4;
    public const int BackingFileOffsetOffset = 8;
    public const int BackingFileSizeOffset = 16;
    public const int ClusterBitsOffset = 20;
    public const int SizeOffset = 24;
    public const int CryptMethodOffset = 32;
    public const int L1SizeOffset = 36;
    public const int L1TableOffsetOffset = 40;
    public const int RefcountTableOffsetOffset = 48;
    public const int RefcountTableClustersOffset = 56;
    public const int SnapshotCountOffset = 60;
    public const int SnapshotsOffsetOffset = 64;
    public const int IncompatibleFeaturesOffset = 72;
    public const int CompatibleFeaturesOffset = 80;
    public const int AutoclearFeaturesOffset = 88;
    public const int RefcountOrderOffset = 96;
    public const int HeaderLengthOffset = 100;
    public const int CompressionTypeOffset = 104;

    /// <summary>Bytes this header occupies: 72 for version 2, header_length otherwise.</summary>
    public int EncodedLength => Version < 3 ? Version2Size : (int)HeaderLength;

    /// <summary>
    /// Parses a header. Throws <see cref="FormatException"/> for a wrong magic or a buffer too short for the
    /// version's fields (72 bytes for version 2; 104 for version 3, and compression_type is read only when both
    /// header_length and the buffer reach past byte 104). Version 2 gets its implied refcount_order 4 and length 72.
    /// </summary>
    public static Qcow2Header Read(ReadOnlySpan<byte> source)
    {
        if (source.Length < Version2Size) throw new FormatException($"a qcow2 header needs {Version2Size} bytes, got {source.Length}");
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(source[MagicOffset..]);
        if (magic != Magic) throw new FormatException($"bad qcow2 magic 0x{magic:x8}");
        uint version = BinaryPrimitives.ReadUInt32BigEndian(source[VersionOffset..]);
        var header = new Qcow2Header(
            version,
            BinaryPrimitives.ReadUInt64BigEndian(source[BackingFileOffsetOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[BackingFileSizeOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[ClusterBitsOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[SizeOffset..]),
            (Qcow2CryptMethod)BinaryPrimitives.ReadUInt32BigEndian(source[CryptMethodOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[L1SizeOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[L1TableOffsetOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[RefcountTableOffsetOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[RefcountTableClustersOffset..]),
            BinaryPrimitives.ReadUInt32BigEndian(source[SnapshotCountOffset..]),
            BinaryPrimitives.ReadUInt64BigEndian(source[SnapshotsOffsetOffset..]));
        if (version < 3) return header;
        if (source.Length < Version3MinSize) throw new FormatException($"a version {version} qcow2 header needs {Version3MinSize} bytes, got {source.Length}");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(source[HeaderLengthOffset..]);
        return header with
        {
            IncompatibleFeatures = (Qcow2IncompatibleFeatures)BinaryPrimitives.ReadUInt64BigEndian(source[IncompatibleFeaturesOffset..]),
            CompatibleFeatures = (Qcow2CompatibleFeatures)BinaryPrimitives.ReadUInt64BigEndian(source[CompatibleFeaturesOffset..]),
            AutoclearFeatures = (Qcow2AutoclearFeatures)BinaryPrimitives.ReadUInt64BigEndian(source[AutoclearFeaturesOffset..]),
            RefcountOrder = BinaryPrimitives.ReadUInt32BigEndian(source[RefcountOrderOffset..]),
            HeaderLength = length,
            CompressionType = length > CompressionTypeOffset && source.Length > CompressionTypeOffset
                ? (Qcow2CompressionType)source[CompressionTypeOffset] : Qcow2CompressionType.Zlib,
        };
    }

    /// <summary>
    /// Writes <see cref="EncodedLength"/> bytes: the version 2 fields, and for version 3 the rest of the header with
    /// its padding zeroed (compression_type only when header_length is at least 112).
    /// </summary>
    public void Write(Span<byte> destination)
    {
        if (Version >= 3 && (HeaderLength < Version3MinSize || HeaderLength % 8 != 0))
            throw new ArgumentException($"a version 3 header_length must be a multiple of 8 and at least {Version3MinSize}, not {HeaderLength}");
        destination[..EncodedLength].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(destination[MagicOffset..], Magic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[VersionOffset..], Version);
        BinaryPrimitives.WriteUInt64BigEndian(destination[BackingFileOffsetOffset..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[BackingFileSizeOffset..], BackingFileSize);
        BinaryPrimitives.WriteUInt32BigEndian(destination[ClusterBitsOffset..], ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(destination[SizeOffset..], Size);
        BinaryPrimitives.WriteUInt32BigEndian(destination[CryptMethodOffset..], (uint)CryptMethod);
        BinaryPrimitives.WriteUInt32BigEndian(destination[L1SizeOffset..], L1Size);
        BinaryPrimitives.WriteUInt64BigEndian(destination[L1TableOffsetOffset..], L1TableOffset);
        BinaryPrimitives.WriteUInt64BigEndian(destination[RefcountTableOffsetOffset..], RefcountTableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[RefcountTableClustersOffset..], RefcountTableClusters);
        BinaryPrimitives.WriteUInt32BigEndian(destination[SnapshotCountOffset..], SnapshotCount);
        BinaryPrimitives.WriteUInt64BigEndian(destination[SnapshotsOffsetOffset..], SnapshotsOffset);
        if (Version < 3) return;
        BinaryPrimitives.WriteUInt64BigEndian(destination[IncompatibleFeaturesOffset..], (ulong)IncompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(destination[CompatibleFeaturesOffset..], (ulong)CompatibleFeatures);
        BinaryPrimitives.WriteUInt64BigEndian(destination[AutoclearFeaturesOffset..], (ulong)AutoclearFeatures);
        BinaryPrimitives.WriteUInt32BigEndian(destination[RefcountOrderOffset..], RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(destination[HeaderLengthOffset..], HeaderLength);
        if (HeaderLength >= CompressionTypeMinSize) destination[CompressionTypeOffset] = (byte)CompressionType;
    }
}
