using System.Buffers.Binary;
using CowDisk.Engine.Devices;
using CowDisk.Engine.Snapshots;
using CowDisk.Format.Mapping;

namespace CowDisk.Engine.Mapping;

/// <summary>
/// A snapshot's view handed from its writer to a reader in another process: the magic "CDVIEW02", u64 length of the
/// journal records, the journal records over the whole disk (<see cref="JournalCodec"/>), then one entry per layered
/// block the view reads (u64 block, then a <see cref="LayerRecord"/> whose block field is 0). Little-endian.
/// </summary>
internal static class ViewExport
{
    private const int LayerEntrySize = 8 + LayerRecord.Size;
    private static ReadOnlySpan<byte> Magic => "CDVIEW02"u8;
    private const int HeaderSize = 16;   // magic, records length

    public static byte[] Encode(MappingTable view, Layers layers)
    {
        var records = JournalCodec.Encode(view, [(0, view.BlockCount)]);
        var seen = layers.All.Where(l => view.GetMapping(l.Top.Block) is { IsData: true } m && m.Epoch == l.Top.Birth).ToList();
        var bytes = new byte[HeaderSize + records.Length + seen.Count * LayerEntrySize];
        Magic.CopyTo(bytes);
        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8), records.Length);
        records.CopyTo(bytes.AsSpan(HeaderSize));
        int at = HeaderSize + records.Length;
        foreach (var (top, layer) in seen)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(at), top.Block);
            new LayerRecord(0, top.Birth, layer.Mask, layer.UnderBirth, layer.UnderCluster).Write(bytes.AsSpan(at + 8));
            at += LayerEntrySize;
        }
        return bytes;
    }

    /// <summary>Fills table with the view's mappings and returns its layers; throws CorruptImageException on bad bytes.</summary>
    public static Layers Decode(ReadOnlySpan<byte> bytes, MappingTable table)
    {
        if (bytes.Length < HeaderSize || !bytes[..8].SequenceEqual(Magic))
            throw new Images.ImageOpenException("the attachment serving this image runs another cowdisk build, whose snapshot export this one cannot read; detach and attach it again");
        long length = BinaryPrimitives.ReadInt64LittleEndian(bytes[8..]);
        if (length < 0 || length > bytes.Length - HeaderSize || (bytes.Length - HeaderSize - length) % LayerEntrySize != 0)
            throw new CorruptImageException("the exported snapshot view is malformed");
        JournalCodec.Apply(table, 0, bytes.Slice(HeaderSize, (int)length));
        var layers = new Layers();
        for (int at = HeaderSize + (int)length; at < bytes.Length; at += LayerEntrySize)
        {
            long block = BinaryPrimitives.ReadInt64LittleEndian(bytes[at..]);
            LayerRecord rec;
            try { rec = LayerRecord.Read(bytes.Slice(at + 8)); }
            catch (FormatException e) { throw new CorruptImageException($"the exported snapshot view: {e.Message}"); }
            if (block < 0 || block >= table.BlockCount) throw new CorruptImageException($"the exported snapshot view layers block {block}, outside the disk");
            layers.Load(block, rec);
        }
        return layers;
    }
}
