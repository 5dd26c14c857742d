namespace CowDisk.Engine.Metadata;

/// <summary>The mapping journal not yet folded into the map chunks: how much there is, and which chunks it touches.</summary>
internal sealed class JournalState
{
    public long Entries { get; set; }
    public long Bytes { get; set; }
    public long NextSequence { get; set; } = 1;
    public HashSet<long> Unfolded { get; } = new();
}
