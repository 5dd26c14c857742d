using System.Numerics;

namespace CowDisk.Engine.Frontends.Nbd;

/// <summary>
/// Payload buffers for the requests in flight, in power-of-two sizes from 4 KiB to the payload limit. Unlike
/// <c>ArrayPool.Create</c> (16 arrays a size, spin locks) it keeps as many of a size as were in use, up to a
/// byte budget, so a client with 256 reads of 256 KiB in flight allocates nothing once warm. The arrays are
/// pinned (sent and read without pinning) and not zeroed: every byte sent was written by the request first.
/// </summary>
internal sealed class NbdBufferPool(int maxLength, long keepBytes)
{
    private const int MinShift = 12;
    private readonly Stack<byte[]>[] _free = [.. Enumerable.Range(0, IndexOf(maxLength) + 1).Select(_ => new Stack<byte[]>())];
    private long _kept;

    public byte[] Rent(int length)
    {
        if (length > maxLength) return GC.AllocateUninitializedArray<byte>(length, pinned: true);   // rare (block status of many contexts): not kept
        int index = IndexOf(length);
        var free = _free[index];
        lock (free)
        {
            if (free.TryPop(out var array))
            {
                Interlocked.Add(ref _kept, -array.Length);
                return array;
            }
        }
        return GC.AllocateUninitializedArray<byte>(1 << (index + MinShift), pinned: true);
    }

    public void Return(byte[] array)
    {
        int index = IndexOf(array.Length);
        if (index >= _free.Length || 1 << (index + MinShift) != array.Length) return;   // not one of ours
        if (Interlocked.Add(ref _kept, array.Length) > keepBytes)
        {
            Interlocked.Add(ref _kept, -array.Length);   // over the budget: left to the GC
            return;
        }
        var free = _free[index];
        lock (free) free.Push(array);
    }

    private static int IndexOf(int length) => length <= 1 << MinShift ? 0 : BitOperations.Log2((uint)length - 1) + 1 - MinShift;
}
