using System.Net;
using System.Net.Sockets;
using CowDisk.Engine.Frontends.Nbd;
using Xunit;

namespace CowDisk.Tests.Nbd;

/// <summary>The reply sender drops a client that reads its replies a byte now and then (a slow-loris reader).</summary>
public sealed class NbdReplySenderTests
{
    [Fact]
    public void A_client_that_takes_only_a_trickle_of_its_replies_is_dropped_after_the_send_timeout()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        client.Connect(listener.LocalEndPoint!);
        using var server = listener.Accept();
        server.SendBufferSize = 4096;
        server.SendTimeout = 1000;

        using var stop = new CancellationTokenSource();
        // Takes up to 4 KiB every 250 ms: every send timeout some bytes move (so each sendmsg returns a short count
        // rather than failing), but far fewer than ProgressBytes.
        var trickle = new Thread(() =>
        {
            var some = new byte[4096];
            try { while (!stop.IsCancellationRequested && client.Receive(some) > 0) Thread.Sleep(250); }
            catch (SocketException) { }
            catch (ObjectDisposedException) { }
        }) { IsBackground = true };
        trickle.Start();

        var reply = GC.AllocateArray<byte>(16 << 20, pinned: true);   // far more than the socket buffers hold
        var sender = new NbdReplySender(server);
        Assert.True(sender.Add(reply, 0, reply.Length));
        var sending = Task.Run(sender.Send);
        try
        {
            // A hang guard, not a timing assert: without the rule this batch would take days at this rate.
            Assert.True(sending.Wait(TimeSpan.FromSeconds(60)) || sending.IsFaulted, "the sender still waits on a client that barely reads");
        }
        catch (AggregateException) { }   // faulted: checked below
        var error = Assert.IsType<IOException>(sending.Exception?.InnerException);
        Assert.Contains("has not read its replies", error.Message);
        stop.Cancel();
        client.Close();
    }
}
