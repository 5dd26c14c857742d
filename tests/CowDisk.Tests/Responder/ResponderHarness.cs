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
/// in a temporary folder.
/// </summary>
internal sealed class ResponderHarness : IDisposable
{
    private readonly SharedRegion _region = new(64);
    private readonly IStorageFile _dataFile;   // a read-only responder never touches it
    private readonly TempDir? _dir;
    private readonly MetadataStore? _store;
    private bool _bellBroken;

    public Doorbell RequestBell { get; } = new();
    public Doorbell ResponseBell { get; } = new();
    public SpscRing Requests { get; }
    public SpscRing Responses { get; }
    public MapResponder Responder { get; }

    public ResponderHarness(bool writable = false)
    {
        var geometry = new ClusterGeometry(4096, 1 << 20);
        Requests = _region.RequestRing;
        Responses = _region.ResponseRing;
        if (writable)
        {
            _dir = new TempDir();
            _store = MetadataStore.Create(HostStorage.Instance, ImageFiles.For(_dir.File("t.img")),
                new ImageRecord { ImageId = Guid.NewGuid(), ClusterSize = geometry.ClusterSize, VirtualSize = geometry.VirtualSize });
            _dataFile = HostStorage.Instance.Create(_dir.File("t.img"));
        }
        else _dataFile = new EmptyStorageFile("(none)");
        Responder = new MapResponder(geometry, new MappingTable(geometry.BlockCount), new ClusterAllocator(1), _store,
            _dataFile, hasBase: false, Requests, Responses, RequestBell, ResponseBell, new ResponderSettings());
    }

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
        if (_bellBroken) WaitForHangUp();   // its thread has ended; Dispose would ring the broken bell
        else Responder.Dispose();
        _region.Dispose();
        RequestBell.Dispose();
        ResponseBell.Dispose();
        _store?.Dispose();
        _dataFile.Dispose();
        _dir?.Dispose();
    }
}
