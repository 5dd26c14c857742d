using Xunit;

namespace CowDisk.Tests.Responder;

public class MapResponderTests
{
    [Fact]
    public void A_stopped_responder_hangs_up_its_response_bell()
    {
        using var r = new ResponderHarness();
        Assert.False(r.ResponseBell.IsClosed);
        r.Responder.Dispose();
        Assert.True(r.ResponseBell.IsClosed);
        Assert.Null(r.Responder.Fatal);
    }

    /// <summary>
    /// An exception outside request handling (here: its own doorbell disposed under it, so its next sleep throws) ends the responder's
    /// thread: it must not take the process with it, and must tell the target it is gone.
    /// </summary>
    [Fact]
    public void A_responder_whose_loop_throws_hangs_up_instead_of_killing_the_process()
    {
        using var r = new ResponderHarness();
        r.BreakRequestBell();
        r.WaitForHangUp();
        Assert.IsType<ObjectDisposedException>(r.Responder.Fatal);
    }
}
