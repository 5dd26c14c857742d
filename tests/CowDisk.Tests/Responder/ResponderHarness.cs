using CowDisk.Engine.Allocation;
using CowDisk.Engine.Mapping;
using CowDisk.Engine.Responder;
using CowDisk.Engine.Ring;
using CowDisk.Format.Image;
using CowDisk.Format.Ring;
using Microsoft.Win32.SafeHandles;
using Xunit;

namespace CowDisk.Tests.Responder;

/// <summary>
/// A read-only responder (no store, no committer) over a real shared region, with the test in the target's
/// seat: it produces requests and drains responses by hand.
/// </summary>
internal sealed class ResponderHarness : IDisposable
{
    private readonly SharedRegion _region = new(64);
    private readonly SafeFileHandle _noDataFile = new();   // a read-only responder never touches it
    private bool _bellBroken;

    public Doorbell RequestBell { get; } = new();
    public Doorbell ResponseBell { get; } = new();
    public SpscRing Requests { get; }
    public SpscRing Responses { get; }
    public MapResponder Responder { get; }

    public ResponderHarness()
    {
        var geometry = new ClusterGeometry(4096, 1 << 20);
        Requests = _region.RequestRing;
        Responses = _region.ResponseRing;
        Responder = new MapResponder(geometry, new MappingTable(geometry.BlockCount), new ClusterAllocator(1), store: null,
            _noDataFile, hasBase: false, Requests, Responses, RequestBell, ResponseBell, new ResponderSettings());
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
            if (Responses.TryConsume(out var ev)) return ev;
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
        _noDataFile.Dispose();
    }
}
