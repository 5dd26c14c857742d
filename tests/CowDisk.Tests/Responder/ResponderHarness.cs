using CowDisk.Engine.Storage;
using CowDisk.Engine.Images;
using CowDisk.Engine.Allocation;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Metadata;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Ring;
using CowDisk.Format.Image;
using CowDisk.Format.Ring;
using CowDisk.Tests.Engine;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace CowDisk.Tests.Responder;

/// <summary>
/// A responder over a real shared region, with the test in the target's seat: it produces requests and drains
/// responses by hand. Read-only (no store, no committer) unless asked; writable, it has a store and a data file
/// in a temporary folder (or, given a storage such as <c>PowerLossStorage</c>, behind that storage seam).
/// </summary>
internal sealed class ResponderHarness : IDisposable
{
    private readonly SharedRegion _region = new(64);
    private readonly IStorageFile _dataFile;   // a read-only responder never touches it
    private readonly TempDir? _dir;
    private readonly MetadataStore? _store;
    private bool _bellBroken;
    private bool _stopped;

    public Doorbell RequestBell { get; } = new();
    public Doorbell ResponseBell { get; } = new();
    public SpscRing Requests { get; }
    public SpscRing Responses { get; }
    public MapResponder Responder { get; }
    public ClusterGeometry Geometry { get; }
    /// <summary>The responder's allocator: read it only while the responder is quiescent (or stopped).</summary>
    public ClusterAllocator Allocator { get; }
    /// <summary>The data file's path (writable only); the metadata files sit beside it.</summary>
    public string? DataPath { get; }
    public Guid ImageId { get; }

    /// <param name="storage">Where a writable responder's files live; the host's file system if null.</param>
    /// <param name="virtualSize">The disk's size; 4 KiB blocks, so 16 MiB and up span more than one map chunk.</param>
    public ResponderHarness(bool writable = false, ResponderSettings? settings = null, IStorage? storage = null, long virtualSize = 1 << 20)
    {
        var geometry = Geometry = new ClusterGeometry(4096, virtualSize);
        Requests = _region.RequestRing;
        Responses = _region.ResponseRing;
        if (writable)
        {
            storage ??= HostStorage.Instance;
            _dir = new TempDir();
            DataPath = _dir.File("t.img");
            ImageId = Guid.NewGuid();
            _store = MetadataStore.Create(storage, ImageFiles.For(DataPath),
                new ImageRecord { ImageId = ImageId, ClusterSize = geometry.ClusterSize, VirtualSize = geometry.VirtualSize });
            _dataFile = storage.Create(DataPath);
            storage.SyncFolder(ImageFiles.For(DataPath).Folder);   // the files' names are durable, as after an image's create
        }
        else _dataFile = new EmptyStorageFile("(none)");
        Allocator = new ClusterAllocator(1);
        Responder = new MapResponder(geometry, new MappingTable(geometry.BlockCount), Allocator, _store,
            _dataFile, hasBase: false, Requests, Responses, RequestBell, ResponseBell, settings ?? new ResponderSettings());
    }

    /// <summary>A map request for a write; returns its answer (for a new extent: Sync, and the cluster it got).</summary>
    public RingEvent MapWrite(ulong id, long block, int count)
    {
        Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Write, Id = id, Block = block, Count = count });
        var rsp = Receive();
        Assert.Equal((RingEventType.MapBlockRsp, id), (rsp.Type, rsp.Id));
        return rsp;
    }

    /// <summary>Tells the responder an extent it handed out is written (result 0) or failed.</summary>
    public void Done(in RingEvent answer, int result = 0) =>
        Send(new RingEvent { Type = RingEventType.MapBlockDone, Id = answer.Id, Block = answer.Block, Count = answer.Count, Result = result });

    /// <summary>A write of new blocks, as the target does it: map, (write the data), DONE. Returns the answer.</summary>
    public RingEvent Write(ulong id, long block, int count = 1)
    {
        var rsp = MapWrite(id, block, count);
        Assert.True((rsp.ResponseFlags & MapResponseFlags.Sync) != 0, $"block {block}: expected a new extent, got {rsp.ResponseFlags}");
        Done(rsp);
        return rsp;
    }

    /// <summary>A read map request; its answer.</summary>
    public RingEvent MapRead(ulong id, long block, int count = 1)
    {
        Send(new RingEvent { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Read, Id = id, Block = block, Count = count });
        var rsp = Receive();
        Assert.Equal((RingEventType.MapBlockRsp, id), (rsp.Type, rsp.Id));
        return rsp;
    }

    /// <summary>A flush; its result (0 or -errno).</summary>
    public int Flush(ulong id)
    {
        Send(new RingEvent { Type = RingEventType.FlushReq, Id = id });
        var rsp = Receive();
        Assert.Equal((RingEventType.FlushRsp, id), (rsp.Type, rsp.Id));
        return rsp.Result;
    }

    /// <summary>The allocation invariants, with the data file as long as the highest cluster handed out (the test writes no data).</summary>
    public InvariantReport CheckInvariants() => Responder.CheckInvariants(Allocator.HighWater * Geometry.ClusterSize);

    public void Send(in RingEvent ev)
    {
        Assert.True(Requests.TryProduce(ev), "request ring full");
        RequestBell.Ring();
    }

    /// <summary>The next response; a responder that never answers fails the test instead of hanging it.</summary>
    public RingEvent Receive()
    {
        for (int waits = 0; waits < 600; waits++)
        {
            if (Responses.TryConsume(out var ev, out bool malformed))
            {
                Assert.False(malformed, "the responder sent a malformed event");
                return ev;
            }
            ResponseBell.Wait(100);   // returns as soon as the responder rings
        }
        throw new Xunit.Sdk.XunitException("the responder did not answer within 60 s");
    }

    /// <summary>
    /// Stops the responder and its committer: every batch it handed to the committer has run when this returns,
    /// so counts of storage operations taken afterwards are final. Requests answered before the call were
    /// handled in a loop round that ran to its end (its commit check included) before the responder stopped.
    /// </summary>
    public void Stop()
    {
        if (_stopped) return;
        _stopped = true;
        Responder.Dispose();
    }

    /// <summary>The mappings a power cut now would leave (only what is durable), read from the metadata store.</summary>
    public MappingTable DurableMappings(Crash.PowerLossStorage storage)
    {
        var durable = storage.CrashKeeping((_, _) => false);
        using var store = MetadataStore.Open(durable, ImageFiles.For(DataPath!), ImageId, readOnly: true);
        var table = new MappingTable(Geometry.BlockCount);
        store.LoadMappings(table);
        return table;
    }

    /// <summary>Disposes the responder's own doorbell under it: its next sleep throws, outside any request.</summary>
    public void BreakRequestBell()
    {
        _bellBroken = true;
        RequestBell.Dispose();
    }

    /// <summary>Waits until the responder hangs up its bell (its thread has ended).</summary>
    public void WaitForHangUp()
    {
        for (int waits = 0; waits < 600 && !ResponseBell.IsClosed; waits++) ResponseBell.Wait(100);
        Assert.True(ResponseBell.IsClosed, "the responder's thread ended without closing the response bell");
    }

    public void Dispose()
    {
        if (_bellBroken)
        {
            // Dispose would ring the broken bell. The hang-up is seen before the thread's last ring is done, so
            // the bells may be disposed only once the thread has ended.
            WaitForHangUp();
            Assert.True(Responder.WaitForExit(TimeSpan.FromSeconds(60)), "the responder's thread did not end after it hung up");
        }
        else Stop();
        _region.Dispose();
        RequestBell.Dispose();
        ResponseBell.Dispose();
        _store?.Dispose();
        _dataFile.Dispose();
        _dir?.Dispose();
    }
}
