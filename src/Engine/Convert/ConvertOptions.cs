namespace CowDisk.Engine.Convert;

/// <summary>The formats `cowdisk convert` writes.</summary>
public enum ConvertFormat { CowDisk, Qcow2, Raw }

public sealed record ConvertOptions
{
    public required ConvertFormat Target { get; init; }
    /// <summary>Cluster size of a cowdisk or qcow2 output; null: the format's default.</summary>
    public int? ClusterSize { get; init; }
    /// <summary>qcow2 output: deflate-compressed clusters (those that do not shrink are stored as they are).</summary>
    public bool Compress { get; init; }
    /// <summary>qcow2 source, cowdisk output: its internal snapshots become cowdisk snapshots.</summary>
    public bool WithSnapshots { get; init; }
    /// <summary>Replace an existing output (atomically: the new one is renamed over it when complete).</summary>
    public bool Force { get; init; }
    /// <summary>Read the source as raw whatever its first bytes say.</summary>
    public bool SourceIsRaw { get; init; }
    public EngineSettings Settings { get; init; } = new();
    /// <summary>Stops the conversion (Ctrl+C): nothing is left behind, the destination is untouched.</summary>
    public CancellationToken Cancel { get; init; }
    /// <summary>Bytes of data copied so far, of the total to copy.</summary>
    public Action<long, long>? Progress { get; init; }
}

/// <summary>What a conversion did.</summary>
public sealed record ConvertResult(string Destination, string SourceFormat, long VirtualSize, long DataBytes, long WrittenBytes, int Snapshots);
