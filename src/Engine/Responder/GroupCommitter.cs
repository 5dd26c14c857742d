using System.Collections.Concurrent;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Storage;
using CowDisk.Engine.Ring;

namespace CowDisk.Engine.Responder;

/// <summary>One group commit: the encoded dirty chunks, the flushes it answers, the extents it frees.</summary>
internal sealed class CommitBatch
{
    public required MetadataChanges Changes { get; init; }
    public required List<ulong> FlushIds { get; init; }
    /// <summary>Snapshot changes this batch makes durable.</summary>
    public List<ulong> ControlIds { get; init; } = new();
    /// <summary>What the batch records, to be recorded again if it fails.</summary>
    public List<(long Block, long Count)> ChangedRanges { get; init; } = new();
    public List<long> DirtyChunks { get; init; } = new();
    /// <summary>Freed before the flushes' drain: reusable once this batch is durable.</summary>
    public required List<(long Cluster, int Count)> Release { get; init; }
    public Exception? Error { get; set; }
    /// <summary>The data file's fsync failed: written data may be gone although reads still show it (fsyncgate).</summary>
    public bool DurabilityLost { get; set; }
}

/// <summary>
/// Runs group commits on a thread of their own, so the responder keeps answering map requests while the
/// data file is fdatasync'ed and LiteDB commits. One batch at a time, in order; completions go back to the
/// responder thread through a queue and its doorbell.
/// </summary>
internal sealed class GroupCommitter : IDisposable
{
    private readonly MetadataStore _store;
    private readonly IStorageFile _dataFile;
    private readonly Doorbell _responderBell;
    private readonly BlockingCollection<CommitBatch> _work = new(boundedCapacity: 1);
    private readonly ConcurrentQueue<CommitBatch> _done = new();
    private readonly Thread _thread;

    public GroupCommitter(MetadataStore store, IStorageFile dataFile, Doorbell responderBell)
    {
        _store = store; _dataFile = dataFile; _responderBell = responderBell;
        _thread = new Thread(Run) { IsBackground = true, Name = "cowdisk-group-commit" };
        _thread.Start();
    }

    public void Submit(CommitBatch batch) => _work.Add(batch);

    public bool TryTakeCompleted(out CommitBatch batch) => _done.TryDequeue(out batch!);

    private void Run()
    {
        foreach (var batch in _work.GetConsumingEnumerable())
        {
            try
            {
                try { _dataFile.Flush(); }   // data durable before the mappings that point at it are committed
                catch (Exception) { batch.DurabilityLost = true; throw; }
                if (!batch.Changes.IsEmpty) _store.Commit(batch.Changes);   // LiteDB commit, then fsync of its log
            }
            catch (Exception e) { batch.Error = e; }
            _done.Enqueue(batch);
            _responderBell.Ring();
        }
    }

    public void Dispose()
    {
        _work.CompleteAdding();
        _thread.Join();
        _work.Dispose();
    }
}
