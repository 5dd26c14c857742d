using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using CowDisk.Engine.Frontends.Nbd;
using CowDisk.Engine.Images;
using CowDisk.Format.Nbd;
using CowDisk.Tests.Engine;
using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace CowDisk.Tests.Nbd;

/// <summary>
/// The NBD server seen from the wire: an in-process <see cref="NbdServer"/> on a Unix socket over a real cowdisk
/// image, driven by <see cref="RawNbdClient"/>, which sends exactly what each test says, well-formed or not.
/// </summary>
public sealed class NbdProtocolTests(ITestOutputHelper output)
{
    private const int KiB = 1 << 10;
    private const int MiB = 1 << 20;
    private const long DiskSize = 8 * MiB;
    private const string ExportName = "disk";
    private const uint HoleZero = (uint)(NbdAllocationState.Hole | NbdAllocationState.Zero);

    // =====================================================================================================
    // Handshake and option haggling
    // =====================================================================================================

    [Fact]
    public void The_greeting_is_NBDMAGIC_IHAVEOPT_with_fixed_newstyle_and_no_zeroes()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        var greeting = client.ReadExactly(18, "the greeting");
        Assert.Equal("NBDMAGICIHAVEOPT", Encoding.ASCII.GetString(greeting, 0, 16));
        Assert.Equal(new byte[] { 0x00, 0x03 }, greeting[16..]);   // FIXED_NEWSTYLE | NO_ZEROES, big-endian
    }

    [Theory]
    [InlineData(0x0000_0004u)]
    [InlineData(0x8000_0001u)]
    [InlineData(0xFFFF_FFFFu)]
    public void Unknown_client_flags_close_the_connection(uint flags)
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.ReadGreeting();
        client.SendClientFlags(flags);
        client.ExpectClosed($"client flags 0x{flags:x8}");
        served.AssertStillServes();
    }

    [Fact]
    public void An_option_with_a_bad_magic_closes_the_connection()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        client.SendOptionRaw(0x4948415645_4F5055 /* "IHAVEOPU" */, NbdOption.Go, 0);
        client.ExpectClosed("an option with magic IHAVEOPU");
        served.AssertStillServes();
    }

    [Theory]
    [InlineData(0x7777u)]
    [InlineData(4u)]                          // NBD_OPT_PEEK_EXPORT: withdrawn
    [InlineData((uint)NbdOption.ExtendedHeaders)]   // not implemented by this server
    public void An_unknown_option_gets_ERR_UNSUP_and_haggling_goes_on(uint option)
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        var replies = client.Option((NbdOption)option, [1, 2, 3, 4, 5]);
        var reply = Assert.Single(replies);
        Assert.Equal(NbdOptionReplyType.ErrorUnsupported, reply.Type);

        var go = client.Go(ExportName);
        Assert.Equal(NbdOptionReplyType.Ack, go[^1].Type);
        Assert.Equal((ulong)DiskSize, client.ExportSize);
        Assert.Equal(new byte[4096], client.ReadOk(0, 4096));
    }

    [Fact]
    public void STARTTLS_on_a_server_without_a_certificate_gets_ERR_POLICY_and_haggling_goes_on()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        Assert.Equal(NbdOptionReplyType.ErrorPolicy, Assert.Single(client.Option(NbdOption.StartTls)).Type);
        client.NegotiateStructuredReplies();
        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        Assert.Equal(new byte[3], client.ReadOk(0, 3));
    }

    [Fact]
    public void OPT_LIST_names_every_export_then_acknowledges()
    {
        using var served = Served.Start(output, exports: image =>
        [
            new NbdExport { Name = "alpha", Description = "the first disk", Device = image },
            new NbdExport { Name = "beta-\u00e9", Device = image, ReadOnly = true },
        ]);
        using var client = served.Connect();
        client.Handshake();
        var replies = client.Option(NbdOption.List);
        Assert.Equal(NbdOptionReplyType.Ack, replies[^1].Type);
        Assert.Empty(replies[^1].Data);
        var listed = replies[..^1].Select(r =>
        {
            Assert.Equal(NbdOptionReplyType.Server, r.Type);
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(r.Data);
            Assert.True(length <= r.Data.Length - 4, $"NBD_REP_SERVER name length {length} past its {r.Data.Length} bytes");
            return (Name: Encoding.UTF8.GetString(r.Data, 4, length), Description: Encoding.UTF8.GetString(r.Data, 4 + length, r.Data.Length - 4 - length));
        }).ToList();
        Assert.Equal(new List<(string, string)> { ("alpha", "the first disk"), ("beta-\u00e9", "") }, listed);

        // LIST with data is invalid, and haggling goes on.
        Assert.Equal(NbdOptionReplyType.ErrorInvalid, Assert.Single(client.Option(NbdOption.List, [0, 0, 0, 0])).Type);
        Assert.Equal(NbdOptionReplyType.Ack, client.Go("beta-\u00e9")[^1].Type);
        Assert.True((client.TransmissionFlags & NbdTransmissionFlags.ReadOnly) != 0, $"flags {client.TransmissionFlags} of a read-only export");
    }

    [Fact]
    public void OPT_INFO_reports_size_flags_and_block_sizes_and_leaves_haggling_open()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        var replies = client.Info(ExportName, NbdInfoType.BlockSize, NbdInfoType.Name);
        Assert.Equal(NbdOptionReplyType.Ack, replies[^1].Type);
        Assert.All(replies[..^1], r => Assert.Equal(NbdOptionReplyType.Info, r.Type));

        var export = Assert.Single(replies, r => r.Type == NbdOptionReplyType.Info && r.InfoType == NbdInfoType.Export);
        Assert.Equal(12, export.Data.Length);
        Assert.Equal((ulong)DiskSize, BinaryPrimitives.ReadUInt64BigEndian(export.Data.AsSpan(2)));
        var flags = (NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(export.Data.AsSpan(10));
        var must = NbdTransmissionFlags.HasFlags | NbdTransmissionFlags.SendFlush | NbdTransmissionFlags.SendFua
            | NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes;
        Assert.True((flags & must) == must, $"flags {flags} lack some of {must}");
        Assert.True((flags & NbdTransmissionFlags.ReadOnly) == 0, $"a writable export advertised as read-only ({flags})");

        var block = Assert.Single(replies, r => r.Type == NbdOptionReplyType.Info && r.InfoType == NbdInfoType.BlockSize);
        Assert.Equal(14, block.Data.Length);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(block.Data.AsSpan(2)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(block.Data.AsSpan(6)));
        Assert.Equal((uint)(32 * MiB), BinaryPrimitives.ReadUInt32BigEndian(block.Data.AsSpan(10)));

        var name = Assert.Single(replies, r => r.Type == NbdOptionReplyType.Info && r.InfoType == NbdInfoType.Name);
        Assert.Equal(ExportName, Encoding.UTF8.GetString(name.Data, 2, name.Data.Length - 2));

        // Still haggling: another option is answered and GO enters transmission.
        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        Assert.Equal(new byte[100], client.ReadOk(5, 100));
    }

    [Fact]
    public void OPT_GO_for_an_unknown_export_gets_ERR_UNKNOWN_and_haggling_goes_on()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        Assert.Equal(NbdOptionReplyType.ErrorUnknown, Assert.Single(client.Go("no-such-disk")).Type);
        Assert.Equal(NbdOptionReplyType.ErrorUnknown, Assert.Single(client.Info("DISK")).Type);   // names are case-sensitive
        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        client.WriteOk(10, [1, 2, 3]);
        Assert.Equal(new byte[] { 1, 2, 3 }, client.ReadOk(10, 3));
    }

    public static TheoryData<string, byte[]> MalformedGoData => new()
    {
        { "name length past the data", [0, 0, 0, 100, (byte)'d', 0, 0] },
        { "name length 0xffffffff", [0xFF, 0xFF, 0xFF, 0xFF, 0, 0] },
        { "shorter than a name length and a count", [0, 0, 0, 0, 0] },
        { "no data at all", [] },
        { "more information requests counted than sent", [0, 0, 0, 4, (byte)'d', (byte)'i', (byte)'s', (byte)'k', 0, 3, 0, 3] },
        { "trailing bytes after the requests", [0, 0, 0, 0, 0, 1, 0, 3, 0xAA] },
    };

    [Theory]
    [MemberData(nameof(MalformedGoData))]
    public void Malformed_OPT_GO_data_gets_ERR_INVALID_and_haggling_goes_on(string what, byte[] data)
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        var reply = Assert.Single(client.Option(NbdOption.Go, data));
        Assert.True(reply.Type == NbdOptionReplyType.ErrorInvalid, $"{what}: {reply}");
        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        Assert.Equal(new byte[1], client.ReadOk(DiskSize - 1, 1));
    }

    [Theory]
    [InlineData((uint)(NbdLimits.MaxOptionData + 1))]
    [InlineData(0xFFFF_FFFFu)]
    public void Option_data_over_the_limit_closes_the_connection_without_reading_it(uint length)
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        // Only the header is sent: a server that waited for the data would keep the connection open.
        client.SendOptionRaw(NbdMagic.Option, NbdOption.Go, length);
        client.ExpectClosed($"an option claiming {length} bytes of data");
        served.AssertStillServes();
    }

    [Fact]
    public void OPT_ABORT_is_acknowledged_then_the_connection_closes()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        var reply = Assert.Single(client.Option(NbdOption.Abort));
        Assert.Equal(NbdOptionReplyType.Ack, reply.Type);
        Assert.Empty(reply.Data);
        client.ExpectClosed("after NBD_OPT_ABORT was acknowledged");
    }

    [Fact]
    public void OPT_EXPORT_NAME_for_an_unknown_export_closes_the_connection()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        client.SendOption(NbdOption.ExportName, Encoding.UTF8.GetBytes("no-such-disk"));
        client.ExpectClosed("NBD_OPT_EXPORT_NAME for an unknown export");
        served.AssertStillServes();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void OPT_EXPORT_NAME_answers_size_and_flags_padded_unless_NO_ZEROES(bool noZeroes)
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake(NbdClientFlags.FixedNewstyle | (noZeroes ? NbdClientFlags.NoZeroes : 0));
        client.SendOption(NbdOption.ExportName, Encoding.UTF8.GetBytes(ExportName));
        var answer = client.ReadExactly(10 + (noZeroes ? 0 : 124), "the NBD_OPT_EXPORT_NAME answer");
        Assert.Equal((ulong)DiskSize, BinaryPrimitives.ReadUInt64BigEndian(answer));
        Assert.True(((NbdTransmissionFlags)BinaryPrimitives.ReadUInt16BigEndian(answer.AsSpan(8)) & NbdTransmissionFlags.HasFlags) != 0);
        Assert.True(answer.AsSpan(10).IndexOfAnyExcept((byte)0) < 0, "the padding is not zeros");
        // The next bytes must be the reply to this read: any padding miscounted breaks the framing.
        Assert.Equal(new byte[7], client.ReadOk(3, 7));
    }

    [Fact]
    public void SET_META_CONTEXT_needs_structured_replies_and_then_selects_base_allocation()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        var early = Assert.Single(client.SetMetaContext(ExportName, "base:allocation"));
        Assert.Equal(NbdOptionReplyType.ErrorInvalid, early.Type);

        client.NegotiateStructuredReplies();
        var unknown = client.SetMetaContext(ExportName, "nosuch:context");
        Assert.Equal(NbdOptionReplyType.Ack, Assert.Single(unknown).Type);   // nothing matches: just the ACK

        var replies = client.SetMetaContext(ExportName, "base:allocation");
        Assert.Equal(NbdOptionReplyType.Ack, replies[^1].Type);
        var context = Assert.Single(replies, r => r.Type == NbdOptionReplyType.MetaContext);
        uint id = BinaryPrimitives.ReadUInt32BigEndian(context.Data);
        Assert.NotEqual(0u, id);
        Assert.Equal("base:allocation", Encoding.UTF8.GetString(context.Data, 4, context.Data.Length - 4));

        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        var status = client.Command(NbdCommand.BlockStatus, 0, 64 * KiB);
        var chunk = Assert.Single(status.Chunks);
        Assert.Equal(NbdReplyChunkType.BlockStatus, chunk.Type);
        Assert.Equal(id, chunk.ContextId);
    }

    [Fact]
    public void A_malformed_SET_META_CONTEXT_gets_ERR_INVALID_and_drops_the_contexts_chosen_before()
    {
        using var served = Served.Start(output);
        using var client = served.Connect();
        client.Handshake();
        client.NegotiateStructuredReplies();
        Assert.Equal(NbdOptionReplyType.Ack, client.SetMetaContext(ExportName, "base:allocation")[^1].Type);
        var good = RawNbdClient.MetaContextData(ExportName, "base:allocation");
        var malformed = good.ToArray();
        BinaryPrimitives.WriteUInt32BigEndian(malformed.AsSpan(4 + ExportName.Length), 0x7FFF_FFFF);   // query count far past the data
        Assert.Equal(NbdOptionReplyType.ErrorInvalid, Assert.Single(client.Option(NbdOption.SetMetaContext, malformed)).Type);
        Assert.Equal(NbdOptionReplyType.ErrorInvalid, Assert.Single(client.Option(NbdOption.SetMetaContext, good[..^3])).Type);   // a query cut short
        Assert.Equal(NbdOptionReplyType.Ack, client.Go(ExportName)[^1].Type);
        var reply = client.Command(NbdCommand.BlockStatus, 0, 4096);
        Assert.True(reply.Error == NbdError.Invalid, $"BLOCK_STATUS after the failed SET_META_CONTEXT: {reply}");
    }

    // =====================================================================================================
    // Transmission: reads and writes
    // =====================================================================================================

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Writes_at_unaligned_offsets_and_lengths_read_back_exactly(bool structured)
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: structured);
        var model = new byte[DiskSize];
        (long Offset, int Length)[] writes =
        [
            (1, 1), (4095, 2), (12345, 7777), (65535, 65539), (3 * 4096 + 17, 200_000),
            (MiB - 3, 6), (DiskSize - 5000, 5000), (DiskSize - 1, 1), (2 * MiB + 511, 513),
        ];
        int seed = 1;
        foreach (var (offset, length) in writes)
        {
            var data = Pattern(length, seed++);
            client.WriteOk(offset, data);
            data.CopyTo(model, offset);
        }
        foreach (var (offset, length) in writes)
        {
            long from = Math.Max(0, offset - 100), to = Math.Min(DiskSize, offset + length + 100);
            AssertSame(model, from, client.ReadOk(from, (int)(to - from)), $"around the write at {offset}+{length}");
        }
        AssertSame(model, 0, client.ReadOk(0, 512 * KiB), "the first 512 KiB");
        // And the image itself holds what the wire said.
        var direct = new byte[512 * KiB];
        served.Image.Read(0, direct);
        AssertSame(model, 0, direct, "the image read directly");
    }

    [Fact]
    public void Structured_reads_send_unwritten_ranges_as_holes_and_written_ones_as_data()
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        var model = new byte[DiskSize];
        void Put(long offset, int length, int seed)
        {
            var data = NonZeroPattern(length, seed);
            client.WriteOk(offset, data);
            data.CopyTo(model, offset);
        }
        Put(64 * KiB + 8 * KiB, 4 * KiB, 1);
        Put(200_000, 100, 2);

        // Entirely unwritten: hole chunks only, covering the range exactly.
        var empty = client.Read(MiB, 256 * KiB);
        var content = RawNbdClient.Assemble(empty, MiB, 256 * KiB);
        Assert.True(content.AsSpan().IndexOfAnyExcept((byte)0) < 0);
        Assert.True(empty.Chunks.All(c => c.Type == NbdReplyChunkType.OffsetHole), $"an unwritten range sent as data: {empty}");
        Assert.Equal(256 * KiB, empty.Chunks.Sum(c => c.ContentLength));

        foreach (var (offset, length) in new (long, int)[] { (0, 256 * KiB), (1000, 300_000), (64 * KiB + 8 * KiB + 100, 5000) })
        {
            var reply = client.Read(offset, length);
            AssertSame(model, offset, RawNbdClient.Assemble(reply, offset, length), $"read {offset}+{length}");
            foreach (var chunk in reply.Chunks.Where(c => c.Type == NbdReplyChunkType.OffsetHole))
                Assert.True(model.AsSpan((int)chunk.Offset, (int)chunk.ContentLength).IndexOfAnyExcept((byte)0) < 0, $"hole {chunk} over written data");
            if (length >= 256 * KiB)
                Assert.True(reply.Chunks.Any(c => c.Type == NbdReplyChunkType.OffsetHole), $"read {offset}+{length}, mostly unwritten, had no hole chunk: {reply}");
        }
    }

    [Fact]
    public void A_read_with_DF_comes_back_as_one_data_chunk()
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        Assert.True((client.TransmissionFlags & NbdTransmissionFlags.SendDf) != 0, $"flags {client.TransmissionFlags} lack SEND_DF");
        var data = NonZeroPattern(10_000, 7);
        client.WriteOk(100_000, data);
        long offset = 100_000 - 70_001;
        const int length = 200_000;
        var reply = client.Read(offset, length, NbdCommandFlags.DontFragment);
        var chunk = Assert.Single(reply.Chunks);
        Assert.Equal(NbdReplyChunkType.OffsetData, chunk.Type);
        Assert.True(chunk.Done);
        Assert.Equal((ulong)offset, chunk.Offset);
        Assert.Equal(length, chunk.ContentLength);
        Assert.Equal(data, chunk.Data.Slice(70_001, data.Length).ToArray());
    }

    [Fact]
    public void A_structured_read_of_many_small_islands_of_data_still_reassembles_exactly()
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        var model = new byte[DiskSize];
        for (int i = 0; i < 200; i++)
        {
            long offset = 3 * MiB + i * 8 * KiB + i % 7 * 513;
            var data = NonZeroPattern(1 + i % 5, 500 + i);
            client.WriteOk(offset, data);
            data.CopyTo(model, offset);
        }
        foreach (var (offset, length) in new (long, int)[] { (3 * MiB, 2 * MiB), (3 * MiB - 777, MiB + 1555), (3 * MiB + 100 * KiB + 1, 5 * 8 * KiB) })
        {
            var reply = client.Read(offset, length);
            AssertSame(model, offset, RawNbdClient.Assemble(reply, offset, length), $"read {offset}+{length} in {reply.Chunks.Count} chunks");
        }
    }

    public static TheoryData<NbdCommand, NbdError, bool> PastTheEnd => new()
    {
        { NbdCommand.Read, NbdError.Invalid, true }, { NbdCommand.Read, NbdError.Invalid, false },
        { NbdCommand.Write, NbdError.NoSpace, true }, { NbdCommand.Write, NbdError.NoSpace, false },
        { NbdCommand.WriteZeroes, NbdError.NoSpace, true }, { NbdCommand.WriteZeroes, NbdError.NoSpace, false },
        // proto.md, error values: "SHOULD return NBD_EINVAL if it receives a read or trim request including one or more sectors beyond the size".
        { NbdCommand.Trim, NbdError.Invalid, true }, { NbdCommand.Trim, NbdError.Invalid, false },
    };

    [Theory]
    [MemberData(nameof(PastTheEnd))]
    public void Requests_past_the_end_fail_with_the_protocols_error_and_the_connection_stays_usable(NbdCommand command, NbdError expected, bool structured)
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: structured);
        var tail = NonZeroPattern(8 * KiB, 3);
        client.WriteOk(DiskSize - tail.Length, tail);
        (ulong Offset, uint Length)[] ranges =
        [
            ((ulong)DiskSize, 1), ((ulong)DiskSize - 1, 2), ((ulong)DiskSize - 4096, 8192),
            ((ulong)DiskSize + 4096, 4096), (ulong.MaxValue - 1, 4), (ulong.MaxValue - 4095, 8192),
        ];
        ulong cookie = 0xE0F0;
        foreach (var (offset, length) in ranges)
        {
            byte[] payload = command == NbdCommand.Write ? NonZeroPattern((int)length, 9) : [];
            client.SendRequest(command, ++cookie, offset, length, payload: payload);
            var reply = client.ReadReply();
            Assert.Equal(cookie, reply.Cookie);
            Assert.True(reply.Error == expected, $"{command} at {offset}+{length}: expected {expected}, got {reply}");
            if (structured) Assert.True(reply.Chunks is [{ Type: NbdReplyChunkType.Error, Done: true }], $"{command} at {offset}+{length}: {reply}");
            else Assert.Null(reply.Data);
            Assert.Equal(tail, client.ReadOk(DiskSize - tail.Length, tail.Length));   // usable, and nothing changed
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_write_over_32_MiB_is_refused_without_touching_the_disk_and_the_connection_goes_on(bool structured)
    {
        const long size = 64 * MiB;
        using var served = Served.Start(output, size: size);
        using var client = served.Open(structured: structured);
        var marker = NonZeroPattern(64 * KiB, 4);
        client.WriteOk(0, marker);
        client.WriteOk(32 * MiB, marker);

        const uint length = 33 * MiB;
        client.SendRequest(NbdCommand.Write, 0xB16, 0, length);
        var piece = new byte[MiB];
        Array.Fill(piece, (byte)0xAB);
        for (uint sent = 0; sent < length; sent += MiB) client.SendRaw(piece);
        var reply = client.ReadReply();
        Assert.Equal(0xB16ul, reply.Cookie);
        Assert.True(reply.Error != NbdError.None, $"a {length}-byte write was accepted: {reply}");
        output.WriteLine($"the 33 MiB write was answered {reply.Error}");

        Assert.Equal(marker, client.ReadOk(0, marker.Length));
        Assert.Equal(marker, client.ReadOk(32 * MiB, marker.Length));
        Assert.Equal(new byte[MiB], client.ReadOk(16 * MiB, MiB));
        var after = NonZeroPattern(5000, 5);
        client.WriteOk(40 * MiB + 3, after);
        Assert.Equal(after, client.ReadOk(40 * MiB + 3, after.Length));

        // A read over the limit is refused too (no data follows the error), and the connection goes on.
        var read = client.Read(0, (int)length);
        Assert.True(read.Error != NbdError.None && read.Data is null, $"a {length}-byte read: {read}");
        Assert.Equal(after, client.ReadOk(40 * MiB + 3, after.Length));

        // Exactly the limit is fine both ways.
        var largest = NonZeroPattern(NbdLimits.MaxPayload, 6);
        client.WriteOk(size - largest.Length, largest);
        Assert.True(largest.AsSpan().SequenceEqual(client.ReadOk(size - largest.Length, largest.Length)), "the 32 MiB write did not read back");
    }

    [Theory]
    [InlineData((ushort)8, true)]        // NBD_CMD_RESIZE: not advertised
    [InlineData((ushort)9, false)]
    [InlineData((ushort)0x7FFF, true)]
    [InlineData((ushort)0xFFFF, false)]
    public void An_unknown_command_gets_EINVAL_and_the_connection_goes_on(ushort command, bool structured)
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: structured);
        var reply = client.Request((NbdCommand)command, 0xC0, 0, 0);
        Assert.True(reply.Error == NbdError.Invalid, $"command {command}: {reply}");
        var reply2 = client.Request((NbdCommand)command, 0xC1, 4096, 4096);
        Assert.True(reply2.Error == NbdError.Invalid, $"command {command} with a length: {reply2}");
        client.WriteOk(77, [9, 8, 7]);
        Assert.Equal(new byte[] { 9, 8, 7 }, client.ReadOk(77, 3));
    }

    [Theory]
    [InlineData(NbdCommand.Read, (ushort)(1 << 5))]
    [InlineData(NbdCommand.Read, (ushort)(1 << 15))]
    [InlineData(NbdCommand.Write, (ushort)(1 << 5))]
    [InlineData(NbdCommand.Write, (ushort)(1 << 15 | 1))]
    [InlineData(NbdCommand.Flush, (ushort)(1 << 9))]
    // Known flags on a command they do not belong to.
    [InlineData(NbdCommand.Write, (ushort)NbdCommandFlags.DontFragment)]
    [InlineData(NbdCommand.Write, (ushort)NbdCommandFlags.NoHole)]
    [InlineData(NbdCommand.Read, (ushort)NbdCommandFlags.RequestOne)]
    [InlineData(NbdCommand.Read, (ushort)NbdCommandFlags.FastZero)]
    public void Unknown_command_flags_get_EINVAL_and_change_nothing(NbdCommand command, ushort flags)
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        var before = NonZeroPattern(4096, 11);
        client.WriteOk(8192, before);
        byte[] payload = command == NbdCommand.Write ? new byte[4096] : [];
        var reply = client.Request(command, 0xF1A6, 8192, command == NbdCommand.Flush ? 0u : 4096u, (NbdCommandFlags)flags, payload);
        Assert.True(reply.Error == NbdError.Invalid, $"{command} with flags 0x{flags:x4}: {reply}");
        Assert.Equal(before, client.ReadOk(8192, 4096));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Zero_length_requests_and_CACHE_are_answered_and_the_connection_goes_on(bool structured)
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: structured);
        Assert.Empty(client.ReadOk(4096, 0));
        Assert.Equal(NbdError.None, client.Write(4096, []).Error);
        Assert.Equal(NbdError.None, client.Command(NbdCommand.Trim, 4096, 0).Error);
        Assert.Equal(NbdError.None, client.Command(NbdCommand.WriteZeroes, 4096, 0).Error);
        Assert.Equal(NbdError.None, client.Command(NbdCommand.Cache, 0, 64 * KiB).Error);
        client.WriteOk(4095, [1, 2]);
        Assert.Equal(new byte[] { 1, 2 }, client.ReadOk(4095, 2));
    }

    [Fact]
    public void DISC_answers_the_requests_before_it_then_closes()
    {
        using var served = Served.Start(output);
        var data = Enumerable.Range(0, 8).Select(i => NonZeroPattern(100_000, 40 + i)).ToList();
        using (var client = served.Open())
        {
            for (int i = 0; i < data.Count; i++) client.SendRequest(NbdCommand.Write, (ulong)i + 1, (ulong)(i * 128 * KiB), (uint)data[i].Length, payload: data[i]);
            client.SendRequest(NbdCommand.Disconnect, 99, 0, 0);
            var replies = ReadReplies(client, data.Count, "writes sent before NBD_CMD_DISC");
            Assert.All(replies, r => Assert.True(r.Error == NbdError.None && r.Cookie is >= 1 and <= 8, $"{r}"));
            client.ExpectClosed("after NBD_CMD_DISC and the replies before it");
        }
        served.WaitForConnections(0, "the disconnected client's connection was not let go");
        using var check = served.Open();
        for (int i = 0; i < data.Count; i++) Assert.Equal(data[i], check.ReadOk(i * 128 * KiB, data[i].Length));
    }

    [Fact]
    public void A_bad_request_magic_closes_that_connection_and_the_server_accepts_new_clients()
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        client.WriteOk(0, [1]);
        client.SendRequest(NbdCommand.Read, 1, 0, 512, magic: NbdMagic.Request ^ 0x0100_0000);
        client.ExpectClosed("a request with a bad magic");
        served.WaitForConnections(0, "the connection with the bad magic was not let go");
        served.AssertStillServes();
    }

    [Fact]
    public void A_read_only_export_refuses_every_change_with_EPERM()
    {
        using var served = Served.Start(output, exports: image => [new NbdExport { Name = ExportName, Device = image, ReadOnly = true }]);
        var before = NonZeroPattern(64 * KiB, 12);
        served.Image.Write(0, before);
        using var client = served.Open();
        Assert.True((client.TransmissionFlags & NbdTransmissionFlags.ReadOnly) != 0, $"flags {client.TransmissionFlags}");
        Assert.True((client.TransmissionFlags & (NbdTransmissionFlags.SendTrim | NbdTransmissionFlags.SendWriteZeroes)) == 0,
            $"a read-only export offers changes: {client.TransmissionFlags}");

        var refused = new List<(string What, NbdReply Reply)>
        {
            ("WRITE", client.Write(100, new byte[1000])),
            ("WRITE|FUA", client.Write(0, new byte[4096], NbdCommandFlags.Fua)),
            ("TRIM", client.Command(NbdCommand.Trim, 0, 64 * KiB)),
            ("WRITE_ZEROES", client.Command(NbdCommand.WriteZeroes, 0, 64 * KiB)),
            ("WRITE_ZEROES|NO_HOLE", client.Command(NbdCommand.WriteZeroes, 4096, 4096, NbdCommandFlags.NoHole)),
        };
        foreach (var (what, reply) in refused) Assert.True(reply.Error == NbdError.NotPermitted, $"{what} on a read-only export: {reply}");
        Assert.Equal(before, client.ReadOk(0, before.Length));
        Assert.Equal(NbdError.None, client.Command(NbdCommand.Flush, 0, 0).Error);
        var direct = new byte[before.Length];
        served.Image.Read(0, direct);
        Assert.Equal(before, direct);
    }

    [Fact]
    public void WRITE_ZEROES_zeroes_with_and_without_NO_HOLE_and_refuses_FAST_ZERO_when_it_must_write()
    {
        using var served = Served.Start(output);
        using var client = served.Open();
        var want = NbdTransmissionFlags.SendWriteZeroes | NbdTransmissionFlags.SendFastZero;
        Assert.True((client.TransmissionFlags & want) == want, $"flags {client.TransmissionFlags} lack {want}");
        var model = NonZeroPattern(256 * KiB, 13);
        client.WriteOk(0, model);

        void Zero(long offset, int length, NbdCommandFlags flags)
        {
            var reply = client.Command(NbdCommand.WriteZeroes, offset, length, flags);
            Assert.True(reply.Error == NbdError.None, $"WRITE_ZEROES {flags} at {offset}+{length}: {reply}");
            Array.Clear(model, (int)offset, length);
            AssertSame(model, 0, client.ReadOk(0, model.Length), $"after WRITE_ZEROES {flags} at {offset}+{length}");
        }
        Zero(4096 + 7, 10_000, NbdCommandFlags.None);
        Zero(64 * KiB, 64 * KiB, NbdCommandFlags.FastZero);            // metadata only: fast, allowed
        Zero(150_001, 3, NbdCommandFlags.NoHole);
        Zero(160 * KiB, 20 * KiB + 1, NbdCommandFlags.NoHole | NbdCommandFlags.Fua);

        var fast = client.Command(NbdCommand.WriteZeroes, 200_000, 30_000, NbdCommandFlags.NoHole | NbdCommandFlags.FastZero);
        Assert.True(fast.Error == NbdError.NotSupported, $"NO_HOLE|FAST_ZERO: {fast}");
        AssertSame(model, 0, client.ReadOk(0, model.Length), "after the refused NO_HOLE|FAST_ZERO");
    }

    // =====================================================================================================
    // Transmission: block status
    // =====================================================================================================

    [Fact]
    public void BLOCK_STATUS_without_a_selected_context_gets_EINVAL()
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: true);
        var reply = client.Command(NbdCommand.BlockStatus, 0, 64 * KiB);
        Assert.True(reply.Error == NbdError.Invalid, $"{reply}");
        Assert.True(reply.Chunks is [{ Type: NbdReplyChunkType.Error, Done: true }], $"{reply}");
        Assert.Equal(new byte[10], client.ReadOk(0, 10));
    }

    [Fact]
    public void BLOCK_STATUS_without_structured_replies_gets_a_simple_EINVAL_reply()
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: false);
        // A hostile client: the server must still not send structured chunks it never agreed to.
        var reply = client.Command(NbdCommand.BlockStatus, 0, 64 * KiB);
        Assert.False(reply.Structured, $"{reply}");
        Assert.True(reply.Error == NbdError.Invalid, $"{reply}");
        Assert.Equal(new byte[10], client.ReadOk(0, 10));
    }

    [Fact]
    public void BLOCK_STATUS_with_a_context_chosen_for_another_export_gets_EINVAL()
    {
        using var served = Served.Start(output, exports: image =>
        [
            new NbdExport { Name = "alpha", Device = image },
            new NbdExport { Name = "beta", Device = image },
        ]);
        using var client = served.Connect();
        client.Handshake();
        client.NegotiateStructuredReplies();
        Assert.Equal(NbdOptionReplyType.Ack, client.SetMetaContext("alpha", "base:allocation")[^1].Type);
        Assert.Equal(NbdOptionReplyType.Ack, client.Go("beta")[^1].Type);
        var reply = client.Command(NbdCommand.BlockStatus, 0, 64 * KiB);
        Assert.True(reply.Error == NbdError.Invalid, $"{reply}");
    }

    [Fact]
    public void BLOCK_STATUS_base_allocation_describes_holes_and_data_exactly()
    {
        using var served = Served.Start(output);
        using var client = served.Open("", true, "base:allocation");
        uint id = client.Contexts["base:allocation"];
        client.WriteOk(MiB, NonZeroPattern(64 * KiB, 14));

        var whole = StatusOf(client.Command(NbdCommand.BlockStatus, 0, DiskSize), id);
        Assert.Equal(Descriptors((MiB, HoleZero), (64 * KiB, 0), ((uint)(DiskSize - MiB - 64 * KiB), HoleZero)), whole);

        // Unaligned: the descriptors start exactly at the request's offset.
        var across = StatusOf(client.Command(NbdCommand.BlockStatus, MiB - 100, 200), id);
        Assert.Equal(Descriptors((100, HoleZero), (100, 0)), across);
        var inside = StatusOf(client.Command(NbdCommand.BlockStatus, MiB + 1000, 5), id);
        Assert.Equal(Descriptors((5, 0)), inside);

        var past = client.Command(NbdCommand.BlockStatus, DiskSize - 4096, 8192);
        Assert.True(past.Error == NbdError.Invalid, $"BLOCK_STATUS past the end: {past}");

        // A zeroed range reads as a hole again.
        Assert.Equal(NbdError.None, client.Command(NbdCommand.WriteZeroes, MiB, 64 * KiB).Error);
        Assert.Equal(Descriptors(((uint)DiskSize, HoleZero)), StatusOf(client.Command(NbdCommand.BlockStatus, 0, DiskSize), id));
    }

    [Fact]
    public void BLOCK_STATUS_with_REQ_ONE_sends_exactly_one_descriptor_within_the_request()
    {
        using var served = Served.Start(output);
        using var client = served.Open("", true, "base:allocation");
        uint id = client.Contexts["base:allocation"];
        client.WriteOk(MiB, NonZeroPattern(64 * KiB, 15));

        (long Offset, long Length, uint Length0, uint Flags0)[] cases =
        [
            (0, 2 * MiB, MiB, HoleZero),
            (MiB + 4 * KiB, MiB, 60 * KiB, 0),
            (512 * KiB, 256 * KiB, 256 * KiB, HoleZero),
            (MiB + 10, 7, 7, 0),
            (MiB - 1, DiskSize - MiB + 1, 1, HoleZero),
        ];
        foreach (var (offset, length, length0, flags0) in cases)
        {
            var descriptors = StatusOf(client.Command(NbdCommand.BlockStatus, offset, length, NbdCommandFlags.RequestOne), id);
            var only = Assert.Single(descriptors);
            Assert.True(only.Length <= length, $"REQ_ONE at {offset}+{length}: descriptor of {only.Length} bytes is longer than the request");
            Assert.True(only == (length0, flags0), $"REQ_ONE at {offset}+{length}: got {only}, expected ({length0}, {flags0})");
        }
    }

    // =====================================================================================================
    // Many requests, many connections
    // =====================================================================================================

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Sixty_four_pipelined_writes_then_reads_are_answered_by_cookie(bool structured)
    {
        using var served = Served.Start(output);
        using var client = served.Open(structured: structured);
        const int count = 64;
        var requests = Enumerable.Range(0, count).Select(i => (
            Cookie: 0xFEED_0000_0000_0000ul | (ulong)i * 0x1_0001,
            Offset: i * 100_003L + 1,
            Data: NonZeroPattern(1000 + i * 1531 % 99_000, 100 + i))).ToList();

        foreach (var r in requests) client.SendRequest(NbdCommand.Write, r.Cookie, (ulong)r.Offset, (uint)r.Data.Length, payload: r.Data);
        var writeReplies = ReadReplies(client, count, "pipelined writes");
        Assert.Equal(requests.Select(r => r.Cookie).Order(), writeReplies.Select(r => r.Cookie).Order());
        foreach (var reply in writeReplies) Assert.True(reply.Error == NbdError.None, $"write {reply}");

        // Reads carry other cookies (the write cookies + 1) in reverse order of the disk.
        var reads = requests.AsEnumerable().Reverse().Select(r => (Cookie: r.Cookie + 1, r.Offset, r.Data)).ToList();
        foreach (var r in reads) client.SendRequest(NbdCommand.Read, r.Cookie, (ulong)r.Offset, (uint)r.Data.Length);
        var readReplies = ReadReplies(client, count, "pipelined reads");
        var byCookie = readReplies.ToDictionary(r => r.Cookie);
        Assert.Equal(count, byCookie.Count);
        foreach (var r in reads)
        {
            Assert.True(byCookie.TryGetValue(r.Cookie, out var reply), $"no reply to the read with cookie {r.Cookie:x}");
            Assert.True(r.Data.AsSpan().SequenceEqual(RawNbdClient.Assemble(reply, r.Offset, r.Data.Length)), $"read {r.Cookie:x} at {r.Offset} returned other data");
        }
        int outOfOrder = readReplies.Select((r, i) => r.Cookie != reads[i].Cookie).Count(x => x);
        output.WriteLine($"{outOfOrder} of {count} read replies came out of request order");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Reads_pipelined_past_the_in_flight_budget_beside_another_clients_writes_return_their_own_data(bool structured)
    {
        // Read payloads go out by address (sendmsg) and come back to a pool the other client's writes rent from:
        // a buffer handed back while its reply was still being sent would show here as another region's bytes.
        const long size = 64 * MiB;
        const int regions = 32, readLength = 256 * KiB, reads = 600;
        using var served = Served.Start(output, size: size);
        var model = new byte[regions * MiB];
        using (var loader = served.Open())
            for (int r = 0; r < regions; r++)
            {
                var data = NonZeroPattern(MiB, 700 + r);
                loader.WriteOk(r * (long)MiB, data);
                data.CopyTo(model, r * MiB);
            }

        bool readsDone = false;
        int writesDone = 0;
        var writer = TestThread.Start("a client writing beside the pipelined reads", () =>
        {
            using var client = served.Open();
            var payload = NonZeroPattern(readLength, 999);
            while (!Volatile.Read(ref readsDone) || writesDone < 16)
            {
                // Above the regions being read, in the same payload size class.
                client.WriteOk(regions * (long)MiB + writesDone % 64 * (long)readLength, payload);
                writesDone++;
            }
        });
        try
        {
            using var reader = served.Open(structured: structured);
            long OffsetOf(int i) => (long)(i * 7 % regions) * MiB + i % 4 * readLength;
            // Far more than the 128 requests and 64 MiB in flight: the server stops reading, replies fill the
            // socket, and every buffer is reused many times while others are still being sent.
            reader.SendRequests(Enumerable.Range(0, reads).Select(i =>
                new NbdRequest(NbdMagic.Request, NbdCommandFlags.None, NbdCommand.Read, (ulong)i, (ulong)OffsetOf(i), readLength)));
            var replies = ReadReplies(reader, reads, "pipelined reads");
            foreach (var reply in replies)
            {
                int i = (int)reply.Cookie;
                Assert.True(reply.Error == NbdError.None, $"read {i}: {reply}");
                AssertSame(model, OffsetOf(i), RawNbdClient.Assemble(reply, OffsetOf(i), readLength), $"read {i} at {OffsetOf(i)}");
            }
        }
        finally
        {
            Volatile.Write(ref readsDone, true);
            writer.Join(TimeSpan.FromSeconds(60));
        }
    }

    [Fact]
    public void Acknowledged_writes_of_two_connections_survive_a_flush_on_one_and_a_reopen()
    {
        using var served = Served.Start(output);
        using var a = served.Open();
        using var b = served.Open(structured: false);
        Assert.True((a.TransmissionFlags & NbdTransmissionFlags.CanMultiConn) != 0, $"flags {a.TransmissionFlags} lack CAN_MULTI_CONN");
        const int writes = 32;
        long OffsetOf(int i, int side) => (2L * i + side) * 64 * KiB + 1000;
        byte[] DataOf(int i, int side) => NonZeroPattern(48 * KiB + i, 1000 * side + i);

        var threads = new[] { a, b }.Select((client, side) => TestThread.Start($"connection {side}", () =>
        {
            for (int i = 0; i < writes; i++)
            {
                var reply = client.Write(OffsetOf(i, side), DataOf(i, side));
                if (reply.Error != NbdError.None) throw new XunitException($"connection {side}, write {i}: {reply}");
            }
        })).ToList();
        foreach (var thread in threads) thread.Join(TimeSpan.FromSeconds(60));

        var flush = a.Command(NbdCommand.Flush, 0, 0);
        Assert.True(flush.Error == NbdError.None, $"FLUSH: {flush}");
        // Each connection sees the other's acknowledged writes.
        Assert.Equal(DataOf(5, 1), a.ReadOk(OffsetOf(5, 1), DataOf(5, 1).Length));
        Assert.Equal(DataOf(7, 0), b.ReadOk(OffsetOf(7, 0), DataOf(7, 0).Length));

        served.Reopen();
        for (int side = 0; side < 2; side++)
            for (int i = 0; i < writes; i++)
            {
                var expected = DataOf(i, side);
                var actual = new byte[expected.Length];
                served.Image.Read(OffsetOf(i, side), actual);
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"connection {side}'s write {i} at {OffsetOf(i, side)} is not on the reopened image");
            }
        var check = served.Image.Check(repair: false);
        Assert.True(check.Corruptions.Count == 0, string.Join("; ", check.Corruptions));
    }

    // =====================================================================================================
    // Hostile and broken clients, and stopping
    // =====================================================================================================

    [Fact]
    public void A_client_that_vanishes_mid_payload_writes_nothing_and_others_are_still_served()
    {
        using var served = Served.Start(output);
        var before = NonZeroPattern(MiB, 21);
        served.Image.Write(2 * MiB, before);

        using (var vanishing = served.Open())
        {
            vanishing.SendRequest(NbdCommand.Write, 0xDEAD, 2 * MiB, MiB);
            var part = new byte[100 * KiB];
            Array.Fill(part, (byte)0xEE);
            vanishing.SendRaw(part);
        }

        using (var other = served.Open())
        {
            var data = NonZeroPattern(70_000, 22);
            other.WriteOk(5 * MiB + 3, data);
            Assert.Equal(data, other.ReadOk(5 * MiB + 3, data.Length));
            Assert.Equal(before, other.ReadOk(2 * MiB, MiB));
            served.WaitForConnections(1, "the vanished client's connection was not let go");
        }

        served.Reopen();
        var after = new byte[MiB];
        served.Image.Read(2 * MiB, after);
        Assert.True(before.AsSpan().SequenceEqual(after), "the region under the cut-off write changed");
        var check = served.Image.Check(repair: false);
        Assert.True(check.Corruptions.Count == 0, string.Join("; ", check.Corruptions));
    }

    [Fact]
    public void A_client_that_never_reads_its_replies_stalls_only_itself_and_does_not_hold_up_Stop()
    {
        const long size = 64 * MiB;
        using var served = Served.Start(output, size: size);
        var stuck = served.Open(structured: false);   // simple replies: every read reply carries its full 1 MiB
        try
        {
            // One send: the server stops reading once its in-flight budget is spent, and 512 small sends could
            // then fill this socket's send buffer (a Unix socket charges each one whole) and block the test itself.
            stuck.SendRequests(Enumerable.Range(0, 512).Select(i =>
                new NbdRequest(NbdMagic.Request, NbdCommandFlags.None, NbdCommand.Read, (ulong)i, (ulong)(i % 64) * MiB, MiB)));
            Served.WaitUntil(() => stuck.Socket.Available > 0, TimeSpan.FromSeconds(30), "the server never started answering the stuck client");

            var healthy = TestThread.Start("a second client while another does not read its replies (limit 30 s)", () =>
            {
                using var client = served.Open();
                for (int i = 0; i < 16; i++)
                {
                    var data = NonZeroPattern(256 * KiB, 300 + i);
                    client.WriteOk(i * MiB + 17, data);
                    if (!data.AsSpan().SequenceEqual(client.ReadOk(i * MiB + 17, data.Length))) throw new XunitException($"round {i}: other data read back");
                }
            });
            healthy.Join(TimeSpan.FromSeconds(30));

            served.StopServer(TimeSpan.FromSeconds(60), "NbdServer.Stop with a client that never reads its replies");
        }
        finally
        {
            stuck.Dispose();
        }
    }

    [Fact]
    public void A_client_that_reads_no_reply_for_the_send_timeout_is_dropped_and_others_are_still_served()
    {
        using var served = Served.Start(output, size: 64 * MiB, sendTimeout: TimeSpan.FromSeconds(1));
        using var stuck = served.Open(structured: false);
        // 512 MiB of replies: far more than both sockets' buffers hold, so a send waits on this client.
        stuck.SendRequests(Enumerable.Range(0, 512).Select(i =>
            new NbdRequest(NbdMagic.Request, NbdCommandFlags.None, NbdCommand.Read, (ulong)i, (ulong)(i % 64) * MiB, MiB)));
        served.WaitForConnections(0, "a client that read none of its replies was not dropped after the send timeout");
        served.AssertStillServes();
    }

    [Fact]
    public void A_client_silent_in_the_handshake_is_dropped_after_the_handshake_timeout()
    {
        using var served = Served.Start(output, handshakeTimeout: TimeSpan.FromSeconds(1));
        using var silent = served.Connect();
        silent.ReadGreeting();
        using var halfway = served.Connect();
        halfway.Handshake();
        halfway.SendRaw(new byte[10]);   // part of an option header, never finished
        silent.ExpectClosed("a client that never answered the greeting");
        halfway.ExpectClosed("a client that stopped in the middle of an option header");
        served.WaitForConnections(0, "the silent clients' connections were not let go");
    }

    [Fact]
    public void Connections_over_the_limit_are_refused_and_room_comes_back_when_one_closes()
    {
        using var served = Served.Start(output, maxConnections: 2);
        var first = served.Open();
        try
        {
            using var second = served.Open();
            served.WaitForConnections(2, "two open clients");
            using (var third = served.Connect()) third.ExpectClosed("a third connection with a limit of two");
            first.Dispose();
            served.WaitForConnections(1, "the closed client's connection was not let go");
            using var fourth = served.Open();
            fourth.WriteOk(1, [5]);
            Assert.Equal(new byte[] { 5 }, second.ReadOk(1, 1));
        }
        finally
        {
            first.Dispose();
        }
    }

    [Fact]
    public void Stop_closes_idle_and_haggling_clients_and_refuses_new_ones()
    {
        using var served = Served.Start(output);
        using var idle = served.Open();
        idle.WriteOk(0, [42]);
        using var haggling = served.Connect();
        haggling.Handshake();
        Assert.Equal(NbdOptionReplyType.Ack, haggling.Option(NbdOption.StructuredReply)[^1].Type);

        served.StopServer(TimeSpan.FromSeconds(60), "NbdServer.Stop with idle clients");
        idle.ExpectClosed("an idle client when the server stopped");
        haggling.ExpectClosed("a client in option haggling when the server stopped");
        Assert.Equal(0, served.Server.ConnectionCount);
        Assert.False(File.Exists(served.SocketPath), "the Unix socket is still there after Stop");
        var refused = Assert.ThrowsAny<SocketException>(() => RawNbdClient.Connect(served.SocketPath).Dispose());
        output.WriteLine($"connect after Stop: {refused.SocketErrorCode}");
    }

    // =====================================================================================================
    // Helpers
    // =====================================================================================================

    /// <summary>An image served on a Unix socket in a temp folder; disposing stops the server, then closes the image.</summary>
    private sealed class Served : IDisposable
    {
        private readonly ITestOutputHelper _output;
        private readonly TempDir _dir;
        private readonly Func<CowImage, IReadOnlyList<NbdExport>> _exports;
        private readonly ConcurrentQueue<string> _log = new();
        private bool _stopped;
        private TimeSpan _handshakeTimeout;
        private TimeSpan _sendTimeout;
        private int _maxConnections;

        public CowImage Image { get; private set; }
        public NbdServer Server { get; private set; } = null!;
        public string ImagePath => _dir.File("disk.img");
        public string SocketPath => _dir.File("nbd.sock");

        private Served(ITestOutputHelper output, TempDir dir, CowImage image, Func<CowImage, IReadOnlyList<NbdExport>> exports)
        {
            _output = output;
            _dir = dir;
            Image = image;
            _exports = exports;
        }

        public static Served Start(ITestOutputHelper output, long size = DiskSize, Func<CowImage, IReadOnlyList<NbdExport>>? exports = null,
            TimeSpan? handshakeTimeout = null, int maxConnections = 64, TimeSpan? sendTimeout = null)
        {
            var dir = new TempDir();
            CowImage? image = null;
            try
            {
                image = CowImage.Create(dir.File("disk.img"), new ImageCreateOptions { Size = size });
                var served = new Served(output, dir, image, exports ?? (i => [new NbdExport { Name = ExportName, Device = i }]))
                {
                    // Long enough never to be what closes a connection in a test that expects the server to close it itself.
                    _handshakeTimeout = handshakeTimeout ?? TimeSpan.FromMinutes(10),
                    _sendTimeout = sendTimeout ?? TimeSpan.FromMinutes(10),
                    _maxConnections = maxConnections,
                };
                try { served.StartServer(); }
                catch
                {
                    served.Dispose();
                    throw;
                }
                return served;
            }
            catch when (image is null)
            {
                dir.Dispose();
                throw;
            }
        }

        private void StartServer()
        {
            Server = new NbdServer(new NbdServerOptions
            {
                Exports = _exports(Image),
                UnixSocket = SocketPath,
                HandshakeTimeout = _handshakeTimeout,
                SendTimeout = _sendTimeout,
                MaxConnections = _maxConnections,
                Log = _log.Enqueue,
            });
            _stopped = false;
            Server.Start();
        }

        public RawNbdClient Connect() => RawNbdClient.Connect(SocketPath);
        public RawNbdClient Open(string export = "", bool structured = true, params string[] contexts) => RawNbdClient.Open(SocketPath, export, structured, contexts);

        /// <summary>A new client can negotiate and do I/O.</summary>
        public void AssertStillServes()
        {
            using var client = Open();
            client.WriteOk(DiskSize - 3, [7, 7, 7]);
            Assert.Equal(new byte[] { 7, 7, 7 }, client.ReadOk(DiskSize - 3, 3));
        }

        public void WaitForConnections(int count, string message) =>
            WaitUntil(() => Server.ConnectionCount == count, TimeSpan.FromSeconds(30), $"{message} ({Server.ConnectionCount} connections, expected {count})");

        public void StopServer(TimeSpan? limit = null, string? what = null)
        {
            if (_stopped) return;
            _stopped = true;
            var server = Server;
            TestThread.Start($"{what ?? "NbdServer.Stop"} (limit {(limit ?? TimeSpan.FromSeconds(60)).TotalSeconds} s)", server.Stop)
                .Join(limit ?? TimeSpan.FromSeconds(60));
        }

        /// <summary>Stops the server, closes the image and opens it again (the server stays stopped).</summary>
        public void Reopen()
        {
            StopServer();
            Image.Dispose();
            Image = CowImage.Open(ImagePath, new ImageOpenOptions());
        }

        public static void WaitUntil(Func<bool> condition, TimeSpan limit, string message)
        {
            long deadline = Environment.TickCount64 + (long)limit.TotalMilliseconds;
            while (!condition())
            {
                if (Environment.TickCount64 > deadline) throw new XunitException($"{message} (waited {limit.TotalSeconds} s)");
                Thread.Sleep(10);
            }
        }

        public void Dispose()
        {
            try { StopServer(); }
            finally
            {
                try { Image.Dispose(); }
                finally
                {
                    foreach (string line in _log)
                    {
                        try { _output.WriteLine($"log: {line}"); } catch (InvalidOperationException) { }
                    }
                    _dir.Dispose();
                }
            }
        }
    }

    private static List<NbdReply> ReadReplies(RawNbdClient client, int count, string what)
    {
        var replies = new List<NbdReply>(count);
        for (int i = 0; i < count; i++) replies.Add(client.ReadReply());
        var duplicate = replies.GroupBy(r => r.Cookie).FirstOrDefault(g => g.Count() > 1);
        Assert.True(duplicate is null, $"{what}: cookie {duplicate?.Key:x} answered {duplicate?.Count()} times");
        return replies;
    }

    /// <summary>The descriptors of a successful BLOCK_STATUS reply with exactly one chunk, for context id.</summary>
    private static List<(uint Length, uint Flags)> StatusOf(NbdReply reply, uint id)
    {
        Assert.True(reply.Error == NbdError.None, $"BLOCK_STATUS failed: {reply}");
        Assert.True(reply.Chunks is [{ Type: NbdReplyChunkType.BlockStatus, Done: true }], $"BLOCK_STATUS: {reply}");
        Assert.Equal(id, reply.Chunks[0].ContextId);
        return reply.Chunks[0].Descriptors;
    }

    private static List<(uint Length, uint Flags)> Descriptors(params (uint Length, uint Flags)[] descriptors) => [.. descriptors];

    private static byte[] Pattern(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    /// <summary>Random bytes with no zero, so no stretch of it can pass for a hole.</summary>
    private static byte[] NonZeroPattern(int length, int seed)
    {
        var data = Pattern(length, seed);
        for (int i = 0; i < data.Length; i++) if (data[i] == 0) data[i] = 0x5A;
        return data;
    }

    private static void AssertSame(byte[] model, long offset, byte[] actual, string what)
    {
        var expected = model.AsSpan((int)offset, actual.Length);
        int at = expected.CommonPrefixLength(actual);
        if (at < actual.Length)
            throw new XunitException($"{what}: byte {offset + at} is 0x{actual[at]:x2}, expected 0x{expected[at]:x2}");
    }
}
