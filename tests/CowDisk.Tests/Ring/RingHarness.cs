using CowDisk.Engine.Mapping;
using CowDisk.Engine.Ring;
using CowDisk.Format.Ring;
using Xunit;

namespace CowDisk.Tests.Ring;

/// <summary>
/// A ring client over a real shared region, with the test in the responder's seat: it can consume requests
/// and produce responses by hand, or start an echo responder that answers everything at once.
/// </summary>
internal sealed class RingHarness : IDisposable
{
    private readonly SharedRegion _region;
    private Thread? _echo;
    private volatile bool _stopEcho;
    private bool _hung;   // a thread may still be inside the ring: keep its memory

    public Doorbell ResponderBell { get; } = new();
    public Doorbell ResponseBell { get; } = new();
    public SpscRing Requests { get; }
    public SpscRing Responses { get; }
    public RingClient Client { get; }

    public RingHarness(int waitMs = RingClient.DefaultWaitMs, int maxInFlight = 16, int slots = 64, MappingCache? cache = null)
    {
        _region = new SharedRegion(slots);
        Requests = _region.RequestRing;
        Responses = _region.ResponseRing;
        Client = new RingClient(Requests, Responses, ResponderBell, ResponseBell, cache, maxInFlight, waitMs);
    }

    public static RingEvent ReadRequest(long block) =>
        new() { Type = RingEventType.MapBlockReq, RequestFlags = MapRequestFlags.Read, Block = block, Count = 1 };

    public static RingEvent AnswerTo(in RingEvent request) => request.Type == RingEventType.FlushReq
        ? new RingEvent { Type = RingEventType.FlushRsp, Id = request.Id }
        : new RingEvent
        {
            Type = RingEventType.MapBlockRsp, Id = request.Id, Block = request.Block, Count = 1,
            ResponseFlags = MapResponseFlags.Valid, DeviceBlock = request.Block + 1000,
        };

    /// <summary>Takes the next request, waiting on the responder's bell (no timeout: a lost wake hangs).</summary>
    public RingEvent TakeRequest()
    {
        while (true)
        {
            if (Requests.TryConsume(out var ev, out bool malformed))
            {
                Assert.False(malformed);
                return ev;
            }
            ResponderBell.Wait(Timeout.Infinite);
        }
    }

    public void Respond(in RingEvent ev)
    {
        Assert.True(Responses.TryProduce(ev), "response ring full");
        ResponseBell.Ring();
    }

    /// <summary>Several responses the client sees at once (none of them before the others).</summary>
    public void RespondAll(params RingEvent[] events)
    {
        Assert.True(Responses.TryProduceAll(events), "response ring full");
        ResponseBell.Ring();
    }

    /// <summary>A responder thread that answers every request at once and sleeps without a timeout.</summary>
    public void StartEcho()
    {
        _echo = new Thread(() =>
        {
            while (!_stopEcho)
            {
                bool any = false;
                while (Requests.TryConsume(out var ev, out _))
                {
                    any = true;
                    while (!Responses.TryProduce(AnswerTo(ev))) { ResponseBell.Ring(); Thread.Yield(); }
                }
                if (any) ResponseBell.Ring();
                else ResponderBell.Wait(Timeout.Infinite);
            }
        }) { IsBackground = true, Name = "test-echo-responder" };
        _echo.Start();
    }

    /// <summary>Joins threads; a thread still running after the guard is a hang (a missed wake-up), not slowness.</summary>
    public void JoinOrFail(IEnumerable<Thread> threads, string what)
    {
        var guard = TimeSpan.FromSeconds(60);
        foreach (var t in threads)
        {
            if (t.Join(guard)) continue;
            _hung = true;
            Assert.Fail($"{what}: {t.Name} still waits after {guard.TotalSeconds} s: a wake-up was lost");
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        if (_echo is not null)
        {
            _stopEcho = true;
            ResponderBell.Ring();
            JoinOrFail([_echo], "echo responder");
        }
        if (_hung) return;
        _region.Dispose();
        ResponderBell.Dispose();
        ResponseBell.Dispose();
    }
}
