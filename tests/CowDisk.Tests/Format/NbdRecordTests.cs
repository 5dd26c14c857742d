using CowDisk.Format.Nbd;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace CowDisk.Tests.Format;

public class NbdRecordTests
{
    private static readonly Config Quick = Config.QuickThrowOnFailure.WithMaxTest(200);
    private static Gen<ulong> U64 => ArbMap.Default.GeneratorFor<ulong>();
    private static Gen<uint> U32 => ArbMap.Default.GeneratorFor<uint>();
    private static Gen<ushort> U16 => Gen.Choose(0, ushort.MaxValue).Select(v => (ushort)v);

    [Fact]
    public void Request_round_trips_at_any_buffer_offset() =>
        Check.One(Quick, Prop.ForAll(
            (from magic in U32 from flags in U16 from cmd in U16 from cookie in U64 from offset in U64 from length in U32
             select new NbdRequest(magic, (NbdCommandFlags)flags, (NbdCommand)cmd, cookie, offset, length)).ToArbitrary(),
            Gen.Choose(0, 40).ToArbitrary(),
            (request, at) =>
            {
                var buffer = new byte[at + NbdRequest.EncodedSize];
                request.Write(buffer.AsSpan(at));
                return NbdRequest.Read(buffer.AsSpan(at)) == request;
            }));

    [Fact]
    public void Replies_round_trip_and_carry_their_magic() =>
        Check.One(Quick, Prop.ForAll(U32.ToArbitrary(), U64.ToArbitrary(), U16.ToArbitrary(), (value, cookie, type) =>
        {
            var simple = new byte[NbdSimpleReply.EncodedSize];
            new NbdSimpleReply((NbdError)value, cookie).Write(simple);
            var chunk = new byte[NbdChunkHeader.EncodedSize];
            var header = new NbdChunkHeader(NbdReplyFlags.Done, (NbdReplyChunkType)type, cookie, value);
            header.Write(chunk);
            var option = new byte[NbdOptionReplyHeader.EncodedSize];
            var optionReply = new NbdOptionReplyHeader((NbdOption)value, (NbdOptionReplyType)(value ^ 0x8000_0000), (uint)type);
            optionReply.Write(option);
            return NbdSimpleReply.Read(simple, out uint m1) == new NbdSimpleReply((NbdError)value, cookie) && m1 == NbdMagic.SimpleReply
                && NbdChunkHeader.Read(chunk, out uint m2) == header && m2 == NbdMagic.StructuredReply
                && NbdOptionReplyHeader.Read(option, out ulong m3) == optionReply && m3 == NbdMagic.OptionReply;
        }));

    [Fact]
    public void Option_header_round_trips() =>
        Check.One(Quick, Prop.ForAll(U64.ToArbitrary(), U32.ToArbitrary(), U32.ToArbitrary(), (magic, option, length) =>
        {
            var buffer = new byte[NbdOptionHeader.EncodedSize];
            var header = new NbdOptionHeader(magic, (NbdOption)option, length);
            header.Write(buffer);
            return NbdOptionHeader.Read(buffer) == header;
        }));

    [Fact]
    public void Fields_are_big_endian_at_the_offsets_the_protocol_gives()
    {
        // A READ of 4096 bytes at 0x1000 with cookie 1, as proto.md lays it out.
        var buffer = new byte[NbdRequest.EncodedSize];
        new NbdRequest(NbdMagic.Request, NbdCommandFlags.Fua, NbdCommand.Write, 1, 0x1000, 4096).Write(buffer);
        Assert.Equal(Convert.FromHexString("25609513" + "0001" + "0001" + "0000000000000001" + "0000000000001000" + "00001000"), buffer);

        var reply = new byte[NbdOptionReplyHeader.EncodedSize];
        new NbdOptionReplyHeader(NbdOption.Go, NbdOptionReplyType.ErrorUnsupported, 0).Write(reply);
        Assert.Equal(Convert.FromHexString("0003e889045565a9" + "00000007" + "80000001" + "00000000"), reply);
    }
}
