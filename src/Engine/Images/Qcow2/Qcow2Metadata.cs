using System.Text;
using CowDisk.Engine.Storage;
using CowDisk.Format.Qcow2;

namespace CowDisk.Engine.Images.Qcow2;

/// <summary>
/// Everything a qcow2 file says about itself before any guest data is read: the header, its extensions, the
/// backing file name and the snapshot table, each checked against the file. A file that fails a check is refused
/// with one line naming what is wrong; nothing read from the file sizes an allocation before it is bounded.
/// </summary>
internal sealed record Qcow2Metadata(
    Qcow2Header Header, string? BackingFile, string? BackingFormat, IReadOnlyList<Qcow2SnapshotEntry> Snapshots)
{
    public const int MinClusterBits = 9;
    /// <summary>2 MiB clusters: qemu's limit, and what keeps a cluster buffer small.</summary>
    public const int MaxClusterBits = 21;
    /// <summary>Extended L2 entries need clusters of 16 KiB or more.</summary>
    public const int MinExtendedL2ClusterBits = 14;
    public const ulong MaxVirtualSize = 1UL << 61;
    /// <summary>32 MiB of L1 table (qemu's limit): 4 Mi entries.</summary>
    public const long MaxL1Entries = (32L << 20) / Qcow2L1Entry.EncodedSize;
    /// <summary>8 MiB of refcount table (qemu's limit).</summary>
    public const long MaxRefcountTableBytes = 8L << 20;
    public const uint MaxSnapshots = 65536;
    public const long MaxSnapshotTableBytes = 64L << 20;
    public const uint MaxSnapshotExtraData = 1024;
    public const uint MaxBackingNameBytes = 1023;
    public const uint MaxBackingFormatBytes = 64;

    private const Qcow2IncompatibleFeatures KnownIncompatible = Qcow2IncompatibleFeatures.Dirty | Qcow2IncompatibleFeatures.Corrupt |
        Qcow2IncompatibleFeatures.ExternalDataFile | Qcow2IncompatibleFeatures.CompressionType | Qcow2IncompatibleFeatures.ExtendedL2;

    public int ClusterBits => (int)Header.ClusterBits;
    public int ClusterSize => 1 << ClusterBits;
    public bool ExtendedL2 => (Header.IncompatibleFeatures & Qcow2IncompatibleFeatures.ExtendedL2) != 0;

    /// <summary>L1 entries needed to map <paramref name="size"/> bytes of guest disk.</summary>
    public static long L1EntriesFor(ulong size, int clusterBits, bool extendedL2)
    {
        int coverBits = clusterBits + L2EntryBits(clusterBits, extendedL2);   // bytes of disk one L2 table maps, as a power of two
        return (long)((size + (1UL << coverBits) - 1) >> coverBits);
    }

    /// <summary>log2 of the entries in one L2 table: cluster_size / 8, or / 16 with extended L2.</summary>
    public static int L2EntryBits(int clusterBits, bool extendedL2) => clusterBits - 3 - (extendedL2 ? 1 : 0);

    public static Qcow2Metadata Read(IStorageFile file, long fileLength, string path)
    {
        ImageOpenException Refuse(string why) => new($"qcow2 image {path}: {why}");

        if (fileLength < Qcow2Header.Version2Size) throw Refuse($"the file is {fileLength} bytes, too short for a qcow2 header");
        Span<byte> start = stackalloc byte[Qcow2Header.CompressionTypeMinSize];
        start = start[..file.Read(0, start)];
        Qcow2Header header;
        try { header = Qcow2Header.Read(start); }
        catch (FormatException e) { throw Refuse(e.Message); }
        if (header.Version is not (2 or 3)) throw Refuse($"version {header.Version} is not supported (only 2 and 3)");
        if (header.ClusterBits is < MinClusterBits or > MaxClusterBits)
            throw Refuse($"cluster_bits {header.ClusterBits} is outside {MinClusterBits}..{MaxClusterBits} (clusters of 512 bytes to 2 MiB)");
        int clusterSize = 1 << (int)header.ClusterBits;
        if (header.Version == 3 && (header.HeaderLength < Qcow2Header.Version3MinSize || header.HeaderLength % 8 != 0 || header.HeaderLength > clusterSize))
            throw Refuse($"header_length {header.HeaderLength} is invalid (a multiple of 8 from {Qcow2Header.Version3MinSize} to the cluster size {clusterSize})");
        if (header.EncodedLength > fileLength) throw Refuse($"the file is {fileLength} bytes, shorter than its {header.EncodedLength}-byte header");

        // The first cluster holds the header, the header extensions and the backing file name.
        var head = new byte[(int)Math.Min(clusterSize, fileLength)];
        if (file.Read(0, head) != head.Length) throw Refuse("the file ended while its first cluster was read");
        header = Qcow2Header.Read(head);   // again, with compression_type now that header_length bytes are there

        int extensionsEnd = head.Length;
        if (header.BackingFileOffset != 0 && header.BackingFileOffset < (ulong)extensionsEnd) extensionsEnd = (int)header.BackingFileOffset;
        var featureNames = new List<Qcow2FeatureNameEntry>();
        var seen = new HashSet<Qcow2HeaderExtensionType>();
        string? backingFormat = null;
        bool encryptionExtension = false, externalDataExtension = false;
        for (int at = header.EncodedLength; at + Qcow2HeaderExtension.EncodedSize <= extensionsEnd;)
        {
            var ext = Qcow2HeaderExtension.Read(head.AsSpan(at));
            if (ext.Type == Qcow2HeaderExtensionType.End) break;
            if (ext.Length > (uint)(extensionsEnd - at - Qcow2HeaderExtension.EncodedSize))
                throw Refuse($"header extension 0x{(uint)ext.Type:x8} at byte {at} declares {ext.Length} bytes, past the end of the header area (byte {extensionsEnd})");
            var data = head.AsSpan(at + Qcow2HeaderExtension.EncodedSize, (int)ext.Length);
            if (Enum.IsDefined(ext.Type) && !seen.Add(ext.Type)) throw Refuse($"header extension 0x{(uint)ext.Type:x8} appears twice");
            switch (ext.Type)
            {
                case Qcow2HeaderExtensionType.BackingFormat:
                    if (ext.Length is 0 or > MaxBackingFormatBytes) throw Refuse($"the backing format name is {ext.Length} bytes (1 to {MaxBackingFormatBytes})");
                    backingFormat = Encoding.UTF8.GetString(data);
                    break;
                case Qcow2HeaderExtensionType.FeatureNameTable:
                    for (int i = 0; i + Qcow2FeatureNameEntry.EncodedSize <= data.Length; i += Qcow2FeatureNameEntry.EncodedSize)
                        featureNames.Add(Qcow2FeatureNameEntry.Read(data[i..]));
                    break;
                case Qcow2HeaderExtensionType.FullDiskEncryption: encryptionExtension = true; break;
                case Qcow2HeaderExtensionType.ExternalDataFile: externalDataExtension = true; break;
            }
            at += (int)ext.TotalLength;
        }

        // Features this reader cannot honour: refused before anything else is looked at.
        if (header.CryptMethod != Qcow2CryptMethod.None || encryptionExtension)
            throw Refuse($"it is encrypted ({(header.CryptMethod == Qcow2CryptMethod.None ? "an encryption header extension" : $"crypt_method {(uint)header.CryptMethod} {header.CryptMethod}")}); encrypted qcow2 images are not supported");
        if ((header.IncompatibleFeatures & Qcow2IncompatibleFeatures.ExternalDataFile) != 0 || externalDataExtension)
            throw Refuse("its data is in an external data file, which is not supported");
        if ((header.IncompatibleFeatures & ~KnownIncompatible) is var unknown && unknown != 0)
            throw Refuse($"it has incompatible features this reader does not know: {DescribeBits((ulong)unknown, featureNames)}");
        if (header.RefcountOrder > Qcow2RefcountBlock.MaxOrder) throw Refuse($"refcount_order {header.RefcountOrder} is over {Qcow2RefcountBlock.MaxOrder} (64-bit refcounts)");
        bool compressionBit = (header.IncompatibleFeatures & Qcow2IncompatibleFeatures.CompressionType) != 0;
        if (header.CompressionType is not (Qcow2CompressionType.Zlib or Qcow2CompressionType.Zstd))
            throw Refuse($"compression type {(byte)header.CompressionType} is unknown (0 zlib and 1 zstd are supported)");
        if (compressionBit != (header.CompressionType != Qcow2CompressionType.Zlib))
            throw Refuse(compressionBit ? "the compression type feature bit is set but compression_type is 0 (zlib)"
                                        : $"compression_type is {(byte)header.CompressionType} without the compression type feature bit");
        bool extendedL2 = (header.IncompatibleFeatures & Qcow2IncompatibleFeatures.ExtendedL2) != 0;
        if (extendedL2 && header.ClusterBits < MinExtendedL2ClusterBits)
            throw Refuse($"extended L2 entries need clusters of at least 16 KiB, not {clusterSize} bytes");

        void CheckExtent(string what, ulong offset, ulong length)
        {
            if (offset % (ulong)clusterSize != 0) throw Refuse($"the {what} offset 0x{offset:x} is not aligned to the cluster size {clusterSize}");
            if (offset > (ulong)fileLength || length > (ulong)fileLength - offset)
                throw Refuse($"the {what} (0x{offset:x}, {length} bytes) runs past the end of the file ({fileLength} bytes)");
            if (length > 0 && offset < (ulong)clusterSize) throw Refuse($"the {what} at 0x{offset:x} overlaps the header cluster");
        }

        if (header.Size > MaxVirtualSize) throw Refuse($"the virtual size {header.Size} is over 2^61 bytes");
        long needed = L1EntriesFor(header.Size, (int)header.ClusterBits, extendedL2);
        if (needed > MaxL1Entries)
            throw Refuse($"a virtual size of {header.Size} bytes with {clusterSize}-byte clusters needs {needed} L1 entries; at most {MaxL1Entries} are supported");
        if (header.L1Size > MaxL1Entries) throw Refuse($"l1_size {header.L1Size} is absurd (over {MaxL1Entries} entries, 32 MiB)");
        if (header.L1Size < needed) throw Refuse($"the L1 table has {header.L1Size} entries, fewer than the {needed} the virtual size needs");
        ulong l1Bytes = (ulong)header.L1Size * Qcow2L1Entry.EncodedSize;
        if (l1Bytes > 0) CheckExtent("L1 table", header.L1TableOffset, l1Bytes);

        if (header.RefcountTableClusters == 0) throw Refuse("it has no refcount table (refcount_table_clusters is 0)");
        if (header.RefcountTableClusters > Math.Max(1, MaxRefcountTableBytes >> (int)header.ClusterBits))
            throw Refuse($"refcount_table_clusters {header.RefcountTableClusters} is absurd (over {MaxRefcountTableBytes >> 20} MiB of table)");
        ulong refcountBytes = (ulong)header.RefcountTableClusters << (int)header.ClusterBits;
        CheckExtent("refcount table", header.RefcountTableOffset, refcountBytes);
        if (l1Bytes > 0 && header.L1TableOffset < header.RefcountTableOffset + refcountBytes && header.RefcountTableOffset < header.L1TableOffset + l1Bytes)
            throw Refuse($"the L1 table (0x{header.L1TableOffset:x}, {l1Bytes} bytes) overlaps the refcount table (0x{header.RefcountTableOffset:x}, {refcountBytes} bytes)");

        string? backingFile = null;
        if (header.BackingFileOffset != 0 && header.BackingFileSize != 0)
        {
            if (header.BackingFileSize > MaxBackingNameBytes) throw Refuse($"the backing file name is {header.BackingFileSize} bytes (at most {MaxBackingNameBytes})");
            if (header.BackingFileOffset >= (ulong)head.Length || header.BackingFileSize > (ulong)head.Length - header.BackingFileOffset)
                throw Refuse($"the backing file name (byte {header.BackingFileOffset}, {header.BackingFileSize} bytes) is not inside the first cluster");
            backingFile = Encoding.UTF8.GetString(head, (int)header.BackingFileOffset, (int)header.BackingFileSize);
        }

        var snapshots = ReadSnapshots(file, fileLength, header, extendedL2, Refuse, CheckExtent);
        return new Qcow2Metadata(header, backingFile, backingFile is null ? null : backingFormat, snapshots);
    }

    private static List<Qcow2SnapshotEntry> ReadSnapshots(IStorageFile file, long fileLength, Qcow2Header header, bool extendedL2,
        Func<string, ImageOpenException> refuse, Action<string, ulong, ulong> checkExtent)
    {
        var snapshots = new List<Qcow2SnapshotEntry>();
        if (header.SnapshotCount == 0) return snapshots;
        if (header.SnapshotCount > MaxSnapshots) throw refuse($"it claims {header.SnapshotCount} snapshots (at most {MaxSnapshots})");
        checkExtent("snapshot table", header.SnapshotsOffset, 0);
        if (header.SnapshotsOffset == 0) throw refuse("the snapshot table offset is 0, the header cluster");
        var fixedPart = new byte[Qcow2SnapshotEntry.FixedSize];
        long at = (long)header.SnapshotsOffset, total = 0;
        for (int i = 0; i < header.SnapshotCount; i++)
        {
            if (fileLength - at < Qcow2SnapshotEntry.FixedSize || file.Read(at, fixedPart) != fixedPart.Length)
                throw refuse($"the snapshot table runs past the end of the file (entry {i} at 0x{at:x})");
            uint extra = Qcow2SnapshotEntry.ExtraDataSizeOf(fixedPart);
            if (extra > MaxSnapshotExtraData) throw refuse($"snapshot entry {i} has {extra} bytes of extra data (at most {MaxSnapshotExtraData})");
            int length = Qcow2SnapshotEntry.EncodedLengthOf(fixedPart);
            total += length;
            if (total > MaxSnapshotTableBytes) throw refuse($"the snapshot table is over {MaxSnapshotTableBytes >> 20} MiB");
            var bytes = new byte[(int)Math.Min(length, fileLength - at)];   // the last entry's padding may be cut off
            Qcow2SnapshotEntry entry;
            try
            {
                if (file.Read(at, bytes) != bytes.Length) throw new FormatException("short read");
                entry = Qcow2SnapshotEntry.Read(bytes, out _);
            }
            catch (FormatException) { throw refuse($"the snapshot table runs past the end of the file (entry {i} at 0x{at:x})"); }
            string name = $"snapshot '{entry.Name}' (id {entry.Id})";
            ulong size = entry.VirtualDiskSize ?? header.Size;
            if (size > MaxVirtualSize) throw refuse($"{name} has a virtual size of {size} bytes, over 2^61");
            long needed = L1EntriesFor(size, (int)header.ClusterBits, extendedL2);
            if (entry.L1Size > MaxL1Entries || needed > MaxL1Entries) throw refuse($"{name} has an absurd L1 table ({entry.L1Size} entries)");
            if (entry.L1Size < needed) throw refuse($"{name} has an L1 table of {entry.L1Size} entries, fewer than the {needed} its size needs");
            if (entry.L1Size > 0) checkExtent($"L1 table of {name}", entry.L1TableOffset, (ulong)entry.L1Size * Qcow2L1Entry.EncodedSize);
            snapshots.Add(entry);
            at += length;
        }
        return snapshots;
    }

    private static string DescribeBits(ulong bits, List<Qcow2FeatureNameEntry> names)
    {
        var parts = new List<string>();
        for (int bit = 0; bit < 64; bit++)
        {
            if ((bits >> bit & 1) == 0) continue;
            var named = names.FirstOrDefault(n => n.Type == Qcow2FeatureType.Incompatible && n.Bit == bit);
            parts.Add(string.IsNullOrEmpty(named.Name) ? $"bit {bit}" : $"bit {bit} ('{named.Name}')");
        }
        return string.Join(", ", parts);
    }
}
