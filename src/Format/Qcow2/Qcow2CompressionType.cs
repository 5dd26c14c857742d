namespace CowDisk.Format.Qcow2;

/// <summary>qcow2 v3 header byte 104 (present when header_length ≥ 112): how compressed clusters are compressed.</summary>
public enum Qcow2CompressionType : byte
{
    /// <summary>Raw deflate (RFC 1951) streams, no zlib header. The default when the field is absent.</summary>
    Zlib = 0,
    /// <summary>Zstandard frames; requires the incompatible "compression type" bit.</summary>
    Zstd = 1,
}
