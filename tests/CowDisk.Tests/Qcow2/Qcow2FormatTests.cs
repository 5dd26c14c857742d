using System.Buffers.Binary;
using CowDisk.Format.Qcow2;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Qcow2;

/// <summary>The qcow2 on-disk records: round trips (FsCheck) and byte-exact layouts from the spec and from qemu-img.</summary>
public class Qcow2FormatTests
{
    private static readonly Config Quick = Config.QuickThrowOnFailure.WithMaxTest(300);

    private static Gen<ulong> AnyULong => from hi in ArbMap.Default.GeneratorFor<uint>() from lo in ArbMap.Default.GeneratorFor<uint>() select ((ulong)hi << 32) | lo;
    private static Gen<uint> AnyUInt => ArbMap.Default.GeneratorFor<uint>();

    private static readonly Gen<Qcow2Header> Headers =
        from version in Gen.Elements(2u, 3u)
        from backingOffset in AnyULong
        from backingSize in AnyUInt
        from clusterBits in Gen.Choose(9, 21)
        from size in AnyULong
        from crypt in Gen.Elements(Qcow2CryptMethod.None, Qcow2CryptMethod.Aes, Qcow2CryptMethod.Luks)
        from l1Size in AnyUInt
        from l1Offset in AnyULong
        from rtOffset in AnyULong
        from rtClusters in AnyUInt
        from snapshots in AnyUInt
        from snapOffset in AnyULong
        from incompatible in AnyULong
        from compatible in AnyULong
        from autoclear in AnyULong
        from order in Gen.Choose(0, 6)
        from length in Gen.Elements(104u, 112u, 120u, 256u)
        from compression in Gen.Elements(Qcow2CompressionType.Zlib, Qcow2CompressionType.Zstd)
        select version == 2
            ? new Qcow2Header(2, backingOffset, backingSize, (uint)clusterBits, size, crypt, l1Size, l1Offset, rtOffset, rtClusters, snapshots, snapOffset)
            : new Qcow2Header(3, backingOffset, backingSize, (uint)clusterBits, size, crypt, l1Size, l1Offset, rtOffset, rtClusters, snapshots, snapOffset,
                (Qcow2IncompatibleFeatures)incompatible, (Qcow2CompatibleFeatures)compatible, (Qcow2AutoclearFeatures)autoclear, (uint)order, length,
                length >= 112 ? compression : Qcow2CompressionType.Zlib);

    [Fact]
    public void Header_round_trips_at_any_buffer_offset() =>
        Check.One(Quick, Prop.ForAll(Headers.ToArbitrary(), Gen.Choose(0, 17).ToArbitrary(), (header, at) =>
        {
            var buffer = new byte[at + 300];
            Array.Fill(buffer, (byte)0xa5);
            header.Write(buffer.AsSpan(at));
            bool before = buffer.AsSpan(0, at).IndexOfAnyExcept((byte)0xa5) < 0;
            bool after = buffer.AsSpan(at + header.EncodedLength).IndexOfAnyExcept((byte)0xa5) < 0;
            return before && after && Qcow2Header.Read(buffer.AsSpan(at, header.EncodedLength)) == header;
        }));

    /// <summary>The first 112 bytes of `qemu-img create -f qcow2 -o compression_type=zstd,extended_l2=on,cluster_size=64k z.qcow2 10M`.</summary>
    private static readonly byte[] QemuV3Header = Convert.FromHexString(
        "514649fb000000030000000000000000" +
        "000000000000001000000000" + "00a00000" +
        "00000000000000010000000000030000" +
        "00000000000100000000000100000000" +
        "00000000000000000000000000000018" +
        "00000000000000000000000000000000" +
        "00000004000000700100000000000000");

    private static readonly Qcow2Header QemuV3 = new(3, 0, 0, 16, 10 << 20, Qcow2CryptMethod.None, 1, 0x30000, 0x10000, 1, 0, 0,
        Qcow2IncompatibleFeatures.CompressionType | Qcow2IncompatibleFeatures.ExtendedL2, Qcow2CompatibleFeatures.None,
        Qcow2AutoclearFeatures.None, 4, 112, Qcow2CompressionType.Zstd);

    [Fact]
    public void Header_matches_the_bytes_qemu_img_writes()
    {
        Assert.Equal(112, QemuV3Header.Length);
        Assert.Equal(QemuV3, Qcow2Header.Read(QemuV3Header));
        var written = new byte[112];
        QemuV3.Write(written);
        Assert.Equal(Convert.ToHexString(QemuV3Header), Convert.ToHexString(written));
    }

    [Fact]
    public void Version_2_header_is_72_bytes_with_implied_fields()
    {
        var v2 = new Qcow2Header(2, 72, 9, 16, 1 << 30, Qcow2CryptMethod.None, 2, 0x30000, 0x10000, 1, 0, 0);
        var buffer = new byte[200];
        Array.Fill(buffer, (byte)0xee);
        v2.Write(buffer);
        Assert.Equal(72, v2.EncodedLength);
        Assert.Equal((byte)0xee, buffer[72]);   // nothing past the v2 header
        Assert.Equal(new byte[] { 0, 0, 0, 2 }, buffer[4..8]);
        Assert.Equal(new byte[] { 0, 0, 0, 0x10 }, buffer[Qcow2Header.ClusterBitsOffset..(Qcow2Header.ClusterBitsOffset + 4)]);
        var read = Qcow2Header.Read(buffer);
        Assert.Equal(4u, read.RefcountOrder);
        Assert.Equal(72u, read.HeaderLength);
        Assert.Equal(Qcow2IncompatibleFeatures.None, read.IncompatibleFeatures);   // bytes 72.. are not v2 fields
    }

    [Fact]
    public void Compression_type_is_absent_below_112_bytes()
    {
        var bytes = (byte[])QemuV3Header.Clone();
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(Qcow2Header.HeaderLengthOffset), 104);
        Assert.Equal(Qcow2CompressionType.Zlib, Qcow2Header.Read(bytes).CompressionType);
        Assert.Equal(Qcow2CompressionType.Zlib, Qcow2Header.Read(QemuV3Header.AsSpan(0, 104)).CompressionType);
    }

    [Fact]
    public void Header_rejects_bad_magic_and_truncation()
    {
        Assert.Contains("magic", Assert.Throws<FormatException>(() => Qcow2Header.Read(new byte[112])).Message);
        Assert.Throws<FormatException>(() => Qcow2Header.Read(QemuV3Header.AsSpan(0, 71)));
        Assert.Throws<FormatException>(() => Qcow2Header.Read(QemuV3Header.AsSpan(0, 100)));   // v3 needs 104
        Assert.Throws<ArgumentException>(() => (QemuV3 with { HeaderLength = 108 }).Write(new byte[200]));
    }

    [Fact]
    public void Header_extension_round_trips_and_pads_to_8() =>
        Check.One(Quick, Prop.ForAll(AnyUInt.ToArbitrary(), AnyUInt.ToArbitrary(), (type, length) =>
        {
            var ext = new Qcow2HeaderExtension((Qcow2HeaderExtensionType)type, length);
            var buffer = new byte[8];
            ext.Write(buffer);
            return Qcow2HeaderExtension.Read(buffer) == ext && ext.TotalLength % 8 == 0 &&
                   ext.TotalLength >= 8 + (ulong)length && ext.TotalLength < 16 + (ulong)length;
        }));

    [Fact]
    public void Header_extension_layout()
    {
        var buffer = new byte[8];
        new Qcow2HeaderExtension(Qcow2HeaderExtensionType.BackingFormat, 3).Write(buffer);
        Assert.Equal("E2792ACA00000003", Convert.ToHexString(buffer));
        Assert.Equal(16UL, new Qcow2HeaderExtension(Qcow2HeaderExtensionType.BackingFormat, 3).TotalLength);
        Assert.Equal(8UL, new Qcow2HeaderExtension(Qcow2HeaderExtensionType.End, 0).TotalLength);
        Assert.Equal(0x6803f857u, (uint)Qcow2HeaderExtensionType.FeatureNameTable);
        Assert.Equal(0x44415441u, (uint)Qcow2HeaderExtensionType.ExternalDataFile);
        Assert.Equal(0x0537be77u, (uint)Qcow2HeaderExtensionType.FullDiskEncryption);
    }

    [Fact]
    public void Feature_name_entry_round_trips_and_matches_qemu()
    {
        Check.One(Quick, Prop.ForAll(Gen.Elements(Qcow2FeatureType.Incompatible, Qcow2FeatureType.Compatible, Qcow2FeatureType.Autoclear).ToArbitrary(),
            Gen.Choose(0, 63).ToArbitrary(), Gen.Elements("", "dirty bit", "x", new string('n', 46)).ToArbitrary(), (type, bit, name) =>
            {
                var entry = new Qcow2FeatureNameEntry(type, (byte)bit, name);
                var buffer = new byte[48];
                Array.Fill(buffer, (byte)1);
                entry.Write(buffer);
                return Qcow2FeatureNameEntry.Read(buffer) == entry;
            }));
        // From the same qemu-img image: the second entry of its table.
        var corrupt = Convert.FromHexString("0001636F7272757074206269740000000000000000000000000000000000000000000000000000000000000000000000");
        Assert.Equal(new Qcow2FeatureNameEntry(Qcow2FeatureType.Incompatible, 1, "corrupt bit"), Qcow2FeatureNameEntry.Read(corrupt));
    }

    [Fact]
    public void Encryption_pointer_round_trips() =>
        Check.One(Quick, Prop.ForAll(AnyULong.ToArbitrary(), AnyULong.ToArbitrary(), (offset, length) =>
        {
            var buffer = new byte[16];
            new Qcow2FullDiskEncryptionPointer(offset, length).Write(buffer);
            return Qcow2FullDiskEncryptionPointer.Read(buffer) == new Qcow2FullDiskEncryptionPointer(offset, length) &&
                   BinaryPrimitives.ReadUInt64BigEndian(buffer) == offset;
        }));

    [Fact]
    public void L1_entry_round_trips_and_splits_its_bits() =>
        Check.One(Quick, Prop.ForAll(AnyULong.ToArbitrary(), raw =>
        {
            var buffer = new byte[8];
            new Qcow2L1Entry(raw).Write(buffer);
            var read = Qcow2L1Entry.Read(buffer);
            return read.Raw == raw && BinaryPrimitives.ReadUInt64BigEndian(buffer) == raw &&
                   (read.L2TableOffset | read.ReservedBits | (read.Copied ? Qcow2L1Entry.CopiedFlag : 0)) == raw &&
                   read.L2TableOffset % 512 == 0 && read.L2TableOffset < 1UL << 56;
        }));

    [Fact]
    public void L1_entry_layout()
    {
        var e = Qcow2L1Entry.Create(0x50000, copied: true);
        Assert.Equal(0x8000_0000_0005_0000UL, e.Raw);
        Assert.Equal(0x50000UL, new Qcow2L1Entry(0x8000_0000_0005_0000UL | 0x1FF).L2TableOffset);
        Assert.Throws<ArgumentOutOfRangeException>(() => Qcow2L1Entry.Create(0x50001, false));
    }

    [Fact]
    public void L2_entry_round_trips_raw_bits() =>
        Check.One(Quick, Prop.ForAll(AnyULong.ToArbitrary(), raw =>
        {
            var buffer = new byte[8];
            new Qcow2L2Entry(raw).Write(buffer);
            return Qcow2L2Entry.Read(buffer).Raw == raw;
        }));

    [Fact]
    public void Standard_and_zero_entries_decode()
    {
        Assert.Equal(Qcow2ClusterMapping.Unallocated, Qcow2L2Entry.Unallocated.Decode(16, false));
        Assert.Equal(new Qcow2ClusterMapping(Qcow2ClusterKind.Standard, 0x70000), new Qcow2L2Entry(0x8000_0000_0007_0000).Decode(16, false));
        Assert.Equal(new Qcow2ClusterMapping(Qcow2ClusterKind.Zero, 0), new Qcow2L2Entry(1).Decode(16, false));
        Assert.Equal(new Qcow2ClusterMapping(Qcow2ClusterKind.Zero, 0x70000), new Qcow2L2Entry(0x70001).Decode(16, false));
        // Extended L2: bit 0 means nothing, the bitmap says what reads as zeros.
        Assert.Equal(Qcow2ClusterMapping.Unallocated, new Qcow2L2Entry(1).Decode(16, true));
        Assert.Equal(new Qcow2ClusterMapping(Qcow2ClusterKind.Standard, 0x70000), new Qcow2L2Entry(0x70001).Decode(16, true));
        // Only bit 63 with offset 0: unallocated (an offset of 0 is valid only with an external data file).
        Assert.Equal(Qcow2ClusterKind.Unallocated, new Qcow2L2Entry(Qcow2L2Entry.CopiedFlag).Decode(16, false).Kind);
        Assert.Equal(0x1FEUL, new Qcow2L2Entry(0x701FF).StandardReservedBits);
    }

    [Theory]
    [InlineData(9, 61, 0x4000_0000_0001_2345UL | 1UL << 61, 0x12345UL, 2u)]      // x = 61: one bit of sectors
    [InlineData(16, 54, 0x40C0_0000_0001_2345UL, 0x12345UL, 4u)]                // x = 54: 3 additional sectors
    [InlineData(21, 49, 0x4000_0000_0001_2345UL | 8191UL << 49, 0x12345UL, 8192u)]   // x = 49: 13 bits of sectors
    public void Compressed_entries_follow_the_x_rule(int clusterBits, int x, ulong raw, ulong offset, uint sectors)
    {
        Assert.Equal(x, Qcow2L2Entry.CompressedSectorShift(clusterBits));
        var m = new Qcow2L2Entry(raw).Decode(clusterBits, extendedL2: false);
        Assert.Equal(new Qcow2ClusterMapping(Qcow2ClusterKind.Compressed, offset, sectors), m);
        Assert.Equal(raw, Qcow2L2Entry.Compressed(offset, sectors, clusterBits).Raw);
        Assert.Equal((ulong)sectors * 512 - 0x145, m.CompressedLength);   // from the offset to the end of its last sector
        Assert.Equal(0x12200UL + (sectors - 1) * 512UL, m.CompressedLastSectorStart);
    }

    [Fact]
    public void Compressed_entry_round_trips_for_every_cluster_size() =>
        Check.One(Quick, Prop.ForAll(Gen.Choose(9, 21).ToArbitrary(), AnyULong.ToArbitrary(), AnyULong.ToArbitrary(), (clusterBits, o, s) =>
        {
            int x = Qcow2L2Entry.CompressedSectorShift(clusterBits);
            ulong offset = o & ((1UL << Math.Min(x, 56)) - 1);
            uint sectors = (uint)(s & ((1UL << (62 - x)) - 1)) + 1;
            var entry = Qcow2L2Entry.Compressed(offset, sectors, clusterBits);
            return entry.Decode(clusterBits, extendedL2: true) == new Qcow2ClusterMapping(Qcow2ClusterKind.Compressed, offset, sectors);
        }));

    [Fact]
    public void Subcluster_bitmap_round_trips_and_reads_states()
    {
        Check.One(Quick, Prop.ForAll(AnyUInt.ToArbitrary(), AnyUInt.ToArbitrary(), (alloc, zero) =>
        {
            var bitmap = Qcow2SubclusterBitmap.Create(alloc, zero);
            var buffer = new byte[8];
            bitmap.Write(buffer);
            var read = Qcow2SubclusterBitmap.Read(buffer);
            return read == bitmap && read.AllocatedMask == alloc && read.ZeroMask == zero && read.HasInvalid == ((alloc & zero) != 0);
        }));
        var b = Qcow2SubclusterBitmap.Create(0b0101, 0b1100);
        Assert.Equal(Qcow2SubclusterState.Allocated, b.State(0));
        Assert.Equal(Qcow2SubclusterState.Unallocated, b.State(1));
        Assert.Equal(Qcow2SubclusterState.Invalid, b.State(2));
        Assert.Equal(Qcow2SubclusterState.Zero, b.State(3));
        var bytes = new byte[8];
        b.Write(bytes);
        Assert.Equal("0000000C00000005", Convert.ToHexString(bytes));   // zero bits in the high word, big-endian
    }

    [Fact]
    public void Extended_l2_entry_round_trips() =>
        Check.One(Quick, Prop.ForAll(AnyULong.ToArbitrary(), AnyULong.ToArbitrary(), (entry, bitmap) =>
        {
            var e = new Qcow2ExtendedL2Entry(new Qcow2L2Entry(entry), new Qcow2SubclusterBitmap(bitmap));
            var buffer = new byte[16];
            e.Write(buffer);
            return Qcow2ExtendedL2Entry.Read(buffer) == e && BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(8)) == bitmap;
        }));

    private static readonly Gen<string> Names = Gen.Elements("", "1", "42", "before-upgrade", "ünïcode", new string('s', 300));

    private static readonly Gen<Qcow2SnapshotEntry> Snapshots =
        from l1 in AnyULong
        from l1Size in AnyUInt
        from id in Names
        from name in Names
        from secs in AnyUInt
        from nanos in AnyUInt
        from clock in AnyULong
        from vm32 in AnyUInt
        from extraLength in Gen.Elements(0, 8, 16, 24, 5, 100)
        from seed in AnyUInt
        select new Qcow2SnapshotEntry(l1, l1Size, id, name, secs, nanos, clock, vm32, Bytes(extraLength, seed));

    private static byte[] Bytes(int length, uint seed)
    {
        var bytes = new byte[length];
        new Random((int)seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Snapshot_entry_round_trips_back_to_back() =>
        Check.One(Quick, Prop.ForAll(Snapshots.ToArbitrary(), Snapshots.ToArbitrary(), (a, b) =>
        {
            var buffer = new byte[a.EncodedLength + b.EncodedLength];
            int n = a.Write(buffer);
            b.Write(buffer.AsSpan(n));
            var first = Qcow2SnapshotEntry.Read(buffer, out int la);
            var second = Qcow2SnapshotEntry.Read(buffer.AsSpan(la), out int lb);
            return n % 8 == 0 && la == n && lb == b.EncodedLength && first.Equals(a) && second.Equals(b) &&
                   Qcow2SnapshotEntry.EncodedLengthOf(buffer) == n;
        }));

    [Fact]
    public void Snapshot_entry_layout_and_extra_data()
    {
        var entry = new Qcow2SnapshotEntry(0x50000, 1, "1", "snap", 1700000000, 5, 0, 7,
            Qcow2SnapshotEntry.StandardExtraData(vmStateSize: 0x1_0000_0000, virtualDiskSize: 10 << 20));
        var buffer = new byte[entry.EncodedLength];
        Assert.Equal(64, entry.Write(buffer));   // 40 + 16 + 1 + 4 = 61, padded to 64
        Assert.Equal("0000000000050000" + "00000001" + "0001" + "0004" + "6553F100" + "00000005" + "0000000000000000" + "00000007" + "00000010" +
                     "0000000100000000" + "0000000000A00000" + "31" + "736E6170" + "000000", Convert.ToHexString(buffer));
        Assert.Equal(0x1_0000_0000UL, entry.VmStateSize);   // the 64-bit field wins over the 32-bit one
        Assert.Equal(10UL << 20, entry.VirtualDiskSize);
        var old = entry with { ExtraData = [] };
        Assert.Equal(7UL, old.VmStateSize);
        Assert.Null(old.VirtualDiskSize);
        Assert.Throws<FormatException>(() => Qcow2SnapshotEntry.Read(buffer.AsSpan(0, 60), out _));
    }

    [Fact]
    public void Refcount_table_entry_round_trips() =>
        Check.One(Quick, Prop.ForAll(AnyULong.ToArbitrary(), raw =>
        {
            var buffer = new byte[8];
            new Qcow2RefcountTableEntry(raw).Write(buffer);
            var e = Qcow2RefcountTableEntry.Read(buffer);
            return e.Raw == raw && (e.RefcountBlockOffset | e.ReservedBits) == raw && e.RefcountBlockOffset % 512 == 0;
        }));

    [Fact]
    public void Refcount_block_entries_of_every_order_round_trip_without_touching_neighbours() =>
        Check.One(Quick, Prop.ForAll(Gen.Choose(0, 6).ToArbitrary(), Gen.Choose(0, 511).ToArbitrary(), AnyULong.ToArbitrary(), (order, index, v) =>
        {
            var block = new byte[4096];
            new Random(order * 1000 + index).NextBytes(block);
            long entries = Qcow2RefcountBlock.EntriesPerBlock(12, order);
            var before = Enumerable.Range(0, (int)Math.Min(entries, 600)).Select(i => Qcow2RefcountBlock.Get(block, i, order)).ToArray();
            ulong value = v & Qcow2RefcountBlock.MaxValue(order);
            Qcow2RefcountBlock.Set(block, index, order, value);
            for (int i = 0; i < before.Length; i++)
                if (Qcow2RefcountBlock.Get(block, i, order) != (i == index ? value : before[i])) return false;
            return entries == 4096L * 8 >> order;
        }));

    [Fact]
    public void Refcount_block_layouts()
    {
        var block = new byte[16];
        Qcow2RefcountBlock.Set(block, 1, 4, 0x0102);
        Assert.Equal("00000102", Convert.ToHexString(block, 0, 4));   // 16-bit big-endian, entry 1 at bytes 2-3
        block = new byte[16];
        Qcow2RefcountBlock.Set(block, 9, 0, 1);
        Assert.Equal(0x02, block[1]);   // 1-bit: entry 9 is bit 1 of byte 1, counted from the least significant bit
        block = new byte[16];
        Qcow2RefcountBlock.Set(block, 1, 2, 0xA);
        Assert.Equal(0xA0, block[0]);   // 4-bit: entry 1 is the high nibble of byte 0
        block = new byte[16];
        Qcow2RefcountBlock.Set(block, 1, 6, 0x0102030405060708);
        Assert.Equal("0102030405060708", Convert.ToHexString(block, 8, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => Qcow2RefcountBlock.Set(block, 0, 1, 4));   // 2 bits hold at most 3
        Assert.Throws<ArgumentOutOfRangeException>(() => Qcow2RefcountBlock.Get(block, 0, 7));
    }
}
