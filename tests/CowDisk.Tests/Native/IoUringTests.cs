using CowDisk.Engine.Native;
using CowDisk.Format.IoUring;
using Xunit;

namespace CowDisk.Tests.Native;

/// <summary>Our io_uring against the real kernel: submissions complete with their user data, in any number of rounds past the ring's size.</summary>
public sealed unsafe class IoUringTests
{
    [Fact]
    public void Reads_of_an_eventfd_complete_with_their_user_data_round_after_round()
    {
        using var ring = IoUring.Create(4, 8, IoUringSetupFlags.Sqe128 | IoUringSetupFlags.SingleIssuer | IoUringSetupFlags.DeferTaskRun);
        using var wake = new EventFd();
        ulong value = 0;
        for (ulong round = 1; round <= 20; round++)   // five times round a 4-entry ring
        {
            IoUringSqe.Read(wake.Fd, (ulong)&value, sizeof(ulong), 0, round * 10).Write(ring.NextEntry());
            Assert.Equal(1, ring.SubmitAndWait(0));
            Assert.False(ring.TryTakeCompletion(out _));   // nothing to read yet: the read waits in the kernel
            wake.Signal();
            Assert.True(ring.SubmitAndWait(1) >= 0);
            Assert.True(ring.TryTakeCompletion(out var done));
            Assert.Equal(round * 10, done.UserData);
            Assert.Equal(sizeof(ulong), done.Result);
            Assert.Equal(1UL, value);
            Assert.False(ring.TryTakeCompletion(out _));
        }
    }

    [Fact]
    public void A_full_submission_ring_gives_no_entry_until_submitted()
    {
        using var ring = IoUring.Create(2, 8, IoUringSetupFlags.Sqe128);
        Assert.False(ring.NextEntry().IsEmpty);
        Assert.False(ring.NextEntry().IsEmpty);
        Assert.True(ring.NextEntry().IsEmpty);   // both slots filled, none submitted
        Assert.Equal(0u, ring.FreeSlots);
    }

    [Fact]
    public void A_bad_descriptor_completes_with_its_errno()
    {
        using var ring = IoUring.Create(2, 4, IoUringSetupFlags.Sqe128);
        ulong buffer = 0;
        IoUringSqe.Read(-1, (ulong)&buffer, 8, 0, 7).Write(ring.NextEntry());
        ring.SubmitAndWait(1);
        Assert.True(ring.TryTakeCompletion(out var done));
        Assert.Equal(7UL, done.UserData);
        Assert.Equal(-Errno.EBADF, done.Result);
    }
}
