using System.Text;
using CsCheck;
using SharedRuntime.Http.Relay.H2;
using Xunit;

namespace SharedRuntime.Tests.Http;

/// <summary>
/// Header compression for the relay's HTTP/2 client: the examples of RFC 7541 Appendix C decode as the RFC says, the
/// Huffman code is HPACK's, what the client encodes decodes back, and whatever a hostile server sends is answered with
/// a problem, never an exception or an unbounded table.
/// </summary>
public sealed class HpackTests
{
    private sealed class Fields : IHeaderSink
    {
        public List<(string Name, string Value)> Received { get; } = [];

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
            Received.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
    }

    private sealed class Discard : IHeaderSink
    {
        public int Count { get; private set; }

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => Count++;
    }

    /// <summary>One header block of an RFC example: its bytes, the fields it carries, and the dynamic table after it, newest first.</summary>
    private sealed record Step(string Hex, (string Name, string Value)[] Fields, (string Name, string Value)[] Table, int TableSize);

    private static byte[] Hex(string hex) => Convert.FromHexString(string.Concat(hex.Where(c => !char.IsWhiteSpace(c))));

    private static byte[] Ascii(string text) => Encoding.Latin1.GetBytes(text);

    private static List<(string Name, string Value)> DecodeOk(HpackDecoder decoder, byte[] block)
    {
        var fields = new Fields();
        Assert.Null(decoder.Decode(block, fields));
        return fields.Received;
    }

    private static string Problem(HpackDecoder decoder, byte[] block)
    {
        var problem = decoder.Decode(block, new Discard());
        Assert.NotNull(problem);
        return problem;
    }

    private static List<(string Name, string Value)> Table(HpackDecoder decoder)
    {
        var entries = new List<(string, string)>();
        for (var i = 0; i < decoder.TableCount; i++)
        {
            Assert.True(decoder.TryGetField(HpackStaticTable.Count + 1 + i, out var name, out var value));
            entries.Add((Encoding.Latin1.GetString(name), Encoding.Latin1.GetString(value)));
        }
        Assert.False(decoder.TryGetField(HpackStaticTable.Count + 1 + decoder.TableCount, out _, out _));
        return entries;
    }

    private static void Run(HpackDecoder decoder, params Step[] steps)
    {
        foreach (var step in steps)
        {
            Assert.Equal(step.Fields, DecodeOk(decoder, Hex(step.Hex)));
            Assert.Equal(step.Table, Table(decoder));
            Assert.Equal(step.TableSize, decoder.TableSize);
        }
    }

    /// <summary>An HPACK integer with a <paramref name="prefixBits"/>-bit prefix, for blocks the client's encoder would never write.</summary>
    private static byte[] Integer(int value, int prefixBits, byte flags)
    {
        var prefixMax = (1 << prefixBits) - 1;
        if (value < prefixMax)
        {
            return [(byte)(flags | value)];
        }
        var bytes = new List<byte> { (byte)(flags | prefixMax) };
        var rest = value - prefixMax;
        while (rest >= 0x80)
        {
            bytes.Add((byte)(rest & 0x7F | 0x80));
            rest >>= 7;
        }
        bytes.Add((byte)rest);
        return [.. bytes];
    }

    // RFC 7541 C.2: single representations.

    [Fact]
    public void A_literal_with_indexing_is_decoded_and_added_to_the_table() =>
        Run(new HpackDecoder(), new Step("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
            [("custom-key", "custom-header")], [("custom-key", "custom-header")], 55));

    [Fact]
    public void A_literal_without_indexing_is_decoded_and_not_added() =>
        Run(new HpackDecoder(), new Step("040c 2f73 616d 706c 652f 7061 7468", [(":path", "/sample/path")], [], 0));

    [Fact]
    public void A_literal_never_indexed_is_decoded_and_not_added() =>
        Run(new HpackDecoder(), new Step("1008 7061 7373 776f 7264 0673 6563 7265 74", [("password", "secret")], [], 0));

    [Fact]
    public void An_indexed_field_from_the_static_table_is_decoded() =>
        Run(new HpackDecoder(), new Step("82", [(":method", "GET")], [], 0));

    // RFC 7541 C.3 to C.6: consecutive blocks on one connection, whose fields refer to what earlier blocks added.

    private static readonly (string, string)[] Request1 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    private static readonly (string, string)[] Request2 = [.. Request1, ("cache-control", "no-cache")];
    private static readonly (string, string)[] Request3 =
        [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];

    private static readonly (string, string)[] Table1 = [(":authority", "www.example.com")];
    private static readonly (string, string)[] Table2 = [("cache-control", "no-cache"), (":authority", "www.example.com")];
    private static readonly (string, string)[] Table3 = [("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")];

    [Fact]
    public void Requests_without_Huffman_coding_share_the_dynamic_table() =>
        Run(new HpackDecoder(),
            new Step("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d", Request1, Table1, 57),
            new Step("8286 84be 5808 6e6f 2d63 6163 6865", Request2, Table2, 110),
            new Step("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65", Request3, Table3, 164));

    [Fact]
    public void Requests_with_Huffman_coding_share_the_dynamic_table() =>
        Run(new HpackDecoder(),
            new Step("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", Request1, Table1, 57),
            new Step("8286 84be 5886 a8eb 1064 9cbf", Request2, Table2, 110),
            new Step("8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf", Request3, Table3, 164));

    private const string Date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
    private const string Date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Location = "https://www.example.com";
    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    private static readonly (string, string)[] Response1 = [(":status", "302"), ("cache-control", "private"), ("date", Date1), ("location", Location)];
    private static readonly (string, string)[] Response2 = [(":status", "307"), ("cache-control", "private"), ("date", Date1), ("location", Location)];
    private static readonly (string, string)[] Response3 =
        [(":status", "200"), ("cache-control", "private"), ("date", Date2), ("location", Location), ("content-encoding", "gzip"), ("set-cookie", Cookie)];

    private static readonly (string, string)[] ResponseTable1 = [("location", Location), ("date", Date1), ("cache-control", "private"), (":status", "302")];
    private static readonly (string, string)[] ResponseTable2 = [(":status", "307"), ("location", Location), ("date", Date1), ("cache-control", "private")];
    private static readonly (string, string)[] ResponseTable3 = [("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", Date2)];

    [Fact]
    public void Responses_without_Huffman_coding_evict_the_oldest_entries_of_a_small_table() =>
        Run(new HpackDecoder(maxTableSize: 256),
            new Step("""
                4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
                2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d
                """, Response1, ResponseTable1, 222),
            new Step("4803 3330 37c1 c0bf", Response2, ResponseTable2, 222),
            new Step("""
                88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
                54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
                5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31
                """, Response3, ResponseTable3, 215));

    [Fact]
    public void Responses_with_Huffman_coding_evict_the_oldest_entries_of_a_small_table() =>
        Run(new HpackDecoder(maxTableSize: 256),
            new Step("""
                4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
                2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3
                """, Response1, ResponseTable1, 222),
            new Step("4883 640e ffc1 c0bf", Response2, ResponseTable2, 222),
            new Step("""
                88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
                77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
                9587 3160 65c0 03ed 4ee5 b106 3d50 07
                """, Response3, ResponseTable3, 215));

    // The dynamic table.

    [Fact]
    public void A_table_size_update_at_the_start_of_a_block_evicts_down_to_the_new_size()
    {
        var decoder = new HpackDecoder();
        DecodeOk(decoder, Hex("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
        Assert.Equal(1, decoder.TableCount);
        // Down to nothing, back to the limit, then a field: all allowed before the first field.
        Assert.Equal([(":method", "GET")], DecodeOk(decoder, [0x20, .. Integer(4096, 5, 0x20), 0x82]));
        Assert.Equal(0, decoder.TableCount);
        Assert.Equal(0, decoder.TableSize);
        DecodeOk(decoder, Hex("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
        Assert.Equal([("custom-key", "custom-header")], Table(decoder));
    }

    [Fact]
    public void An_entry_larger_than_the_table_empties_it_and_is_still_a_field()
    {
        var decoder = new HpackDecoder(maxTableSize: 64);
        DecodeOk(decoder, [0x40, 0x01, (byte)'a', 0x01, (byte)'b']);
        Assert.Equal(34, decoder.TableSize);
        var big = new string('v', 40);
        Assert.Equal([("a", big)], DecodeOk(decoder, [0x40, 0x01, (byte)'a', 40, .. Ascii(big)]));
        Assert.Equal(0, decoder.TableCount);
        Assert.Equal(0, decoder.TableSize);
    }

    [Fact]
    public void A_new_entry_may_take_its_name_from_the_entry_it_evicts()
    {
        var decoder = new HpackDecoder(maxTableSize: 64);
        DecodeOk(decoder, [0x40, 0x04, .. Ascii("aaaa"), 0x04, .. Ascii("bbbb")]);
        // Name index 62 is "aaaa", whose entry must go to make room for the new one.
        Assert.Equal([("aaaa", "cccccccc")], DecodeOk(decoder, [0x7E, 0x08, .. Ascii("cccccccc")]));
        Assert.Equal([("aaaa", "cccccccc")], Table(decoder));
        Assert.Equal(44, decoder.TableSize);
    }

    [Fact]
    public void A_long_run_of_insertions_keeps_every_entry_intact_as_the_table_reuses_its_memory()
    {
        var decoder = new HpackDecoder(maxTableSize: 100);
        DecodeOk(decoder, [0x40, 0x04, .. Ascii("name"), 0x01, (byte)'x']);
        var previous = "x";
        for (var i = 0; i < 500; i++)
        {
            // Each takes the newest entry's name; values of varied lengths move the live entries around the buffer.
            var value = new string((char)('a' + i % 26), i % 23);
            Assert.Equal([("name", value)], DecodeOk(decoder, [0x7E, (byte)value.Length, .. Ascii(value)]));
            var table = Table(decoder);
            Assert.Equal(("name", value), table[0]);
            if (table.Count > 1)
            {
                Assert.Equal(("name", previous), table[1]);
            }
            Assert.Equal(table.Sum(e => e.Name.Length + e.Value.Length + 32), decoder.TableSize);
            Assert.InRange(decoder.TableSize, 0, 100);
            previous = value;
        }
    }

    private const int ModelTableSize = 128;

    /// <summary>
    /// One block of a generated conversation: 0 a new name, 1 the name of live entry <c>Pick</c>, 2 the whole live
    /// entry <c>Pick</c>, 3 a table size update to <c>Pick</c>; names and values are arbitrary bytes.
    /// </summary>
    private sealed record Operation(int Kind, int Pick, byte[] Name, byte[] Value, bool Huffman);

    private static byte[] EncodeString(byte[] text, bool huffman)
    {
        if (!huffman)
        {
            return [.. Integer(text.Length, 7, 0x00), .. text];
        }
        var encoded = new byte[Huffman.EncodedLength(text)];
        Huffman.Encode(text, encoded);
        return [.. Integer(encoded.Length, 7, 0x80), .. encoded];
    }

    private static void MatchesTheModel(Operation[] operations)
    {
        var decoder = new HpackDecoder(ModelTableSize, 4096);
        var capacity = ModelTableSize;
        var model = new List<(byte[] Name, byte[] Value)>();
        foreach (var op in operations)
        {
            byte[] block;
            (byte[] Name, byte[] Value)? field = null;
            if (op.Kind == 3)
            {
                capacity = op.Pick % (ModelTableSize + 1);
                block = Integer(capacity, 5, 0x20);
                while (model.Sum(e => e.Name.Length + e.Value.Length + 32) > capacity)
                {
                    model.RemoveAt(model.Count - 1);
                }
            }
            else if (op.Kind == 2 && model.Count > 0)
            {
                var pick = op.Pick % model.Count;
                block = Integer(HpackStaticTable.Count + 1 + pick, 7, 0x80);
                field = model[pick];
            }
            else
            {
                byte[] head;
                if (op.Kind == 1 && model.Count > 0)
                {
                    var pick = op.Pick % model.Count;
                    head = Integer(HpackStaticTable.Count + 1 + pick, 6, 0x40);
                    field = (model[pick].Name, op.Value);
                }
                else
                {
                    head = [0x40, .. EncodeString(op.Name, op.Huffman)];
                    field = (op.Name, op.Value);
                }
                block = [.. head, .. EncodeString(op.Value, op.Huffman)];
                var size = field.Value.Name.Length + field.Value.Value.Length + 32;
                while (model.Count > 0 && model.Sum(e => e.Name.Length + e.Value.Length + 32) + size > capacity)
                {
                    model.RemoveAt(model.Count - 1);
                }
                if (size <= capacity)
                {
                    model.Insert(0, field.Value);
                }
            }
            var fields = new Fields();
            Assert.Null(decoder.Decode(block, fields));
            Assert.Equal(field is { } f ? [(Encoding.Latin1.GetString(f.Name), Encoding.Latin1.GetString(f.Value))] : [], fields.Received);
            Assert.Equal(model.Select(e => (Encoding.Latin1.GetString(e.Name), Encoding.Latin1.GetString(e.Value))), Table(decoder));
            Assert.Equal(model.Sum(e => e.Name.Length + e.Value.Length + 32), decoder.TableSize);
        }
    }

    [Fact]
    public void The_dynamic_table_holds_what_the_RFC_says_through_any_sequence_of_insertions_references_and_resizes() =>
        Gen.Select(Gen.Int[0, 3], Gen.Int[0, 200], Gen.Byte.Array[0, 40], Gen.Byte.Array[0, 60], Gen.Bool,
                (kind, pick, name, value, huffman) => new Operation(kind, pick, name, value, huffman))
            .Array[1, 60].Sample(MatchesTheModel, iter: 3000);

    // Huffman coding.

    [Fact]
    public void The_canonical_Huffman_code_is_HPACKs()
    {
        (int Symbol, uint Code, int Length)[] known =
        [
            (48, 0x0, 5), (97, 0x3, 5), (32, 0x14, 6), (47, 0x18, 6), (58, 0x5c, 7), (38, 0xf8, 8), (33, 0x3f8, 10),
            (39, 0x7fa, 11), (35, 0xffa, 12), (0, 0x1ff8, 13), (94, 0x3ffc, 14), (60, 0x7ffc, 15), (92, 0x7fff0, 19),
            (128, 0xfffe6, 20), (153, 0x1fffdc, 21), (129, 0x3fffd2, 22), (1, 0x7fffd8, 23), (9, 0xffffea, 24),
            (199, 0x1ffffec, 25), (255, 0x3ffffee, 26), (203, 0x7ffffde, 27), (254, 0x7fffff0, 27), (2, 0xfffffe2, 28),
            (10, 0x3ffffffc, 30), (22, 0x3ffffffe, 30), (256, 0x3fffffff, 30),
        ];
        foreach (var (symbol, code, length) in known)
        {
            Assert.Equal((code, length), Huffman.CodeOf(symbol));
        }
        // Complete and prefix-free: the codes tile the 30-bit space exactly.
        long covered = 0;
        for (var symbol = 0; symbol <= 256; symbol++)
        {
            covered += 1L << (30 - Huffman.CodeOf(symbol).Length);
        }
        Assert.Equal(1L << 30, covered);
        // As RFC 7541 C.4.1 encodes "www.example.com".
        var encoded = new byte[Huffman.EncodedLength(Ascii("www.example.com"))];
        Assert.Equal(encoded.Length, Huffman.Encode(Ascii("www.example.com"), encoded));
        Assert.Equal(Hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff"), encoded);
    }

    private static void AssertRoundTrip(byte[] text)
    {
        var length = Huffman.EncodedLength(text);
        var encoded = new byte[length];
        Assert.Equal(length, Huffman.Encode(text, encoded));
        var decoded = new byte[text.Length];
        Assert.Equal(text.Length, Huffman.Decode(encoded, decoded));
        Assert.Equal(text, decoded);
    }

    [Fact]
    public void Every_byte_value_survives_Huffman_coding()
    {
        AssertRoundTrip([.. Enumerable.Range(0, 256).Select(b => (byte)b)]);
        for (var b = 0; b < 256; b++)
        {
            AssertRoundTrip([(byte)b]);
            AssertRoundTrip([(byte)b, (byte)b, (byte)b]);
        }
        AssertRoundTrip([]);
    }

    [Fact]
    public void Random_strings_survive_Huffman_coding() =>
        Gen.Byte.Array[0, 300].Sample(AssertRoundTrip, iter: 5000);

    [Fact]
    public void A_Huffman_string_with_EOS_or_bad_padding_does_not_decode()
    {
        var output = new byte[64];
        // 'a' (00011) then EOS (30 ones), padded with ones.
        Assert.Equal(-1, Huffman.Decode([0x1F, 0xFF, 0xFF, 0xFF, 0xFF], output));
        // 'a' then 11 ones: padding of 8 bits or more.
        Assert.Equal(-1, Huffman.Decode([0x1F, 0xFF], output));
        Assert.Equal(-1, Huffman.Decode([0xFF], output));
        // 'a' then padding 110: a zero bit.
        Assert.Equal(-1, Huffman.Decode([0x1E], output));
        // 'a' then 111 is fine.
        Assert.Equal(1, Huffman.Decode([0x1F], output));
        Assert.Equal((byte)'a', output[0]);
    }

    [Fact]
    public void A_Huffman_string_that_does_not_fit_the_destination_does_not_decode()
    {
        var encoded = Hex("f1e3 c2e5 f23a 6ba0 ab90 f4ff");
        Assert.Equal(-1, Huffman.Decode(encoded, new byte[14]));
        Assert.Equal(15, Huffman.Decode(encoded, new byte[15]));
        Assert.Equal(-1, Huffman.Encode(Ascii("www.example.com"), new byte[11]));
    }

    // The client's encoder.

    [Fact]
    public void What_the_client_encodes_decodes_to_the_same_fields()
    {
        var longValue = new string('z', 300);
        var block = new byte[1024];
        var length = 0;
        length += HpackEncoder.WriteIndexed(HpackEncoder.MethodPost, block.AsSpan(length));
        length += HpackEncoder.WriteIndexed(HpackEncoder.SchemeHttp, block.AsSpan(length));
        length += HpackEncoder.WriteLiteralIndexedName(HpackEncoder.PathName, Ascii("/v1.0/invoke/app/method/x?y=1"), block.AsSpan(length));
        length += HpackEncoder.WriteLiteralIndexedName(HpackEncoder.AuthorityName, Ascii("localhost:3500"), block.AsSpan(length));
        length += HpackEncoder.WriteLiteralIndexedName(HpackEncoder.ContentTypeName, Ascii("application/json"), block.AsSpan(length));
        length += HpackEncoder.WriteLiteralIndexedName(HpackEncoder.UserAgentName, [], block.AsSpan(length));
        length += HpackEncoder.WriteLiteral(Ascii("te"), Ascii("trailers"), block.AsSpan(length));
        length += HpackEncoder.WriteLiteral(Ascii("x-long"), Ascii(longValue), block.AsSpan(length));
        var decoder = new HpackDecoder();
        Assert.Equal(
            [(":method", "POST"), (":scheme", "http"), (":path", "/v1.0/invoke/app/method/x?y=1"), (":authority", "localhost:3500"),
             ("content-type", "application/json"), ("user-agent", ""), ("te", "trailers"), ("x-long", longValue)],
            DecodeOk(decoder, block[..length]));
        Assert.Equal(0, decoder.TableCount);
    }

    [Fact]
    public void The_client_encodes_as_the_RFC_examples_do()
    {
        var output = new byte[64];
        Assert.Equal(1, HpackEncoder.WriteIndexed(HpackEncoder.MethodGet, output));
        Assert.Equal(Hex("82"), output[..1]);
        var length = HpackEncoder.WriteLiteralIndexedName(HpackEncoder.PathName, Ascii("/sample/path"), output);
        Assert.Equal(Hex("040c 2f73 616d 706c 652f 7061 7468"), output[..length]);
        length = HpackEncoder.WriteLiteral(Ascii("password"), Ascii("secret"), output);
        Assert.Equal(Hex("0008 7061 7373 776f 7264 0673 6563 7265 74"), output[..length]);
    }

    [Fact]
    public void An_encoder_destination_too_small_is_minus_one_at_every_length()
    {
        var value = Ascii(new string('v', 200));
        var full = new byte[512];
        var needed = (Indexed: HpackEncoder.WriteIndexed(HpackEncoder.StatusName, full),
            IndexedName: HpackEncoder.WriteLiteralIndexedName(HpackEncoder.UserAgentName, value, full),
            Literal: HpackEncoder.WriteLiteral(Ascii("x-name"), value, full));
        Assert.Equal(1, needed.Indexed);
        Assert.Equal(2 + 2 + 200, needed.IndexedName);
        Assert.Equal(1 + 1 + 6 + 2 + 200, needed.Literal);
        for (var size = 0; size < needed.Literal; size++)
        {
            var destination = new byte[size];
            Assert.Equal(size < needed.Indexed ? -1 : needed.Indexed, HpackEncoder.WriteIndexed(HpackEncoder.StatusName, destination));
            Assert.Equal(size < needed.IndexedName ? -1 : needed.IndexedName,
                HpackEncoder.WriteLiteralIndexedName(HpackEncoder.UserAgentName, value, destination));
            Assert.Equal(-1, HpackEncoder.WriteLiteral(Ascii("x-name"), value, destination));
        }
    }

    // Hostile input.

    private const int FuzzTableSize = 256;

    private static void DecodeNeverThrows(byte[][] blocks)
    {
        var decoder = new HpackDecoder(FuzzTableSize, 1024);
        var sink = new Discard();
        foreach (var block in blocks)
        {
            var problem = decoder.Decode(block, sink);
            Assert.InRange(decoder.TableSize, 0, FuzzTableSize);
            Assert.Equal(Table(decoder).Sum(e => e.Name.Length + e.Value.Length + 32), decoder.TableSize);
            if (problem is not null)
            {
                return;
            }
        }
    }

    [Fact]
    public void Arbitrary_bytes_from_a_server_are_a_problem_or_fields_never_an_exception() =>
        Gen.Byte.Array[0, 300].Array[1, 4].Sample(DecodeNeverThrows, iter: 20_000);

    /// <summary>Pieces of valid and nearly valid representations, so that generated blocks get past the first byte.</summary>
    private static readonly byte[][] Pieces =
    [
        [0x40, 0x01, (byte)'a', 0x01, (byte)'b'], [0x40, 0x04, .. "name"u8, 0x1F, .. new byte[31]], [0x7E, 0x03, .. "xyz"u8],
        [0x7F, 0x00, 0x00], [0x5F, 0x10, 0x82, 0x64, 0x02], [0xBE], [0xBF], [0xC0], [0x82], [0x0F, 0x2F, 0x00], [0x20],
        [0x3F, 0xE1, 0x01], [0x3F, 0xE1, 0x1F], [0x00, 0x81, 0x1F, 0x83, 0x64, 0x0E, 0xFF], [0x10, 0x81, 0x1E, 0x00],
        [0x00, 0x7F], [0x40, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F], [0x40, 0x05, (byte)'a'], [0xFF, 0x80, 0x80], [0x40, 0x80, 0x80],
    ];

    [Fact]
    public void Generated_header_blocks_are_a_problem_or_fields_and_the_table_stays_bounded() =>
        Gen.OneOf(Pieces).Array[0, 40].Select(pieces => pieces.SelectMany(p => p).ToArray()).Array[1, 4].Sample(DecodeNeverThrows, iter: 20_000);

    [Fact]
    public void A_table_size_update_above_the_announced_limit_is_a_problem()
    {
        Assert.Contains("4096", Problem(new HpackDecoder(), Integer(4097, 5, 0x20)));
        Assert.Contains("4096", Problem(new HpackDecoder(), Integer(int.MaxValue, 5, 0x20)));
        Assert.Empty(DecodeOk(new HpackDecoder(), Integer(4096, 5, 0x20)));
        Assert.Contains("100", Problem(new HpackDecoder(maxTableSize: 100), Integer(101, 5, 0x20)));
    }

    [Fact]
    public void A_table_size_update_after_a_field_is_a_problem() =>
        Assert.Contains("after the first field", Problem(new HpackDecoder(), [0x82, 0x20]));

    [Fact]
    public void An_integer_with_ten_continuation_bytes_is_a_problem_even_when_small()
    {
        Assert.Contains("integer too large", Problem(new HpackDecoder(), [0xFF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]));
        Assert.Contains("integer too large", Problem(new HpackDecoder(), [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]));
        Assert.Contains("integer too large", Problem(new HpackDecoder(), [0x00, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]));
    }

    [Fact]
    public void AHeaderBlockThatOverflowsTheListLimitIsAProblemNotAnAllocation()
    {
        Assert.Contains("header list longer than 100 bytes",
            Problem(new HpackDecoder(maxHeaderListSize: 100), [0x00, 0x01, (byte)'x', 80, .. new byte[80]]));
        // Many small fields add up.
        Assert.Contains("header list longer than 16384 bytes", Problem(new HpackDecoder(), [.. Enumerable.Repeat((byte)0x82, 1000)]));
        // A Huffman string that would decode past the limit is refused while decoding, into a buffer that does not grow.
        var zeros = Ascii(new string('0', 2000));
        var encoded = new byte[Huffman.EncodedLength(zeros)];
        Huffman.Encode(zeros, encoded);
        Assert.Contains("header list longer than 1024 bytes",
            Problem(new HpackDecoder(maxHeaderListSize: 1024), [0x00, 0x01, (byte)'x', .. Integer(encoded.Length, 7, 0x80), .. encoded]));
        // Just at the limit is fine.
        Assert.Single(DecodeOk(new HpackDecoder(maxHeaderListSize: 100), [0x00, 0x01, (byte)'x', 67, .. new byte[67]]));
    }

    [Fact]
    public void An_index_past_the_table_is_a_problem()
    {
        Assert.Contains("index 62", Problem(new HpackDecoder(), [0xBE]));
        Assert.Contains("index 0", Problem(new HpackDecoder(), [0x80]));
        Assert.Contains("index 62", Problem(new HpackDecoder(), [0x0F, 0x2F, 0x00]));
        var decoder = new HpackDecoder();
        DecodeOk(decoder, [0x40, 0x01, (byte)'a', 0x01, (byte)'b']);
        Assert.Equal([("a", "b")], DecodeOk(decoder, [0xBE]));
        Assert.Contains("index 63", Problem(decoder, [0xBF]));
    }

    [Fact]
    public void A_string_longer_than_the_rest_of_the_block_is_a_problem()
    {
        Assert.Contains("longer than the rest", Problem(new HpackDecoder(), [0x00, 0x05, (byte)'a', (byte)'b']));
        Assert.Contains("longer than the rest", Problem(new HpackDecoder(), [0x00, 0x01, (byte)'a', 0x7F, 0xFF, 0x7F]));
    }

    [Fact]
    public void A_block_cut_short_is_a_problem()
    {
        Assert.Equal("a truncated header block", Problem(new HpackDecoder(), [0x40]));
        Assert.Equal("a truncated header block", Problem(new HpackDecoder(), [0x00, 0x01, (byte)'a']));
        Assert.Equal("a truncated header block", Problem(new HpackDecoder(), [0xFF]));
        Assert.Equal("a truncated header block", Problem(new HpackDecoder(), [0x3F, 0x80]));
    }

    [Fact]
    public void A_Huffman_string_that_does_not_decode_is_a_problem()
    {
        Assert.Equal("a Huffman string that does not decode", Problem(new HpackDecoder(), [0x00, 0x81, 0x1E, 0x00]));
        Assert.Equal("a Huffman string that does not decode", Problem(new HpackDecoder(), [0x00, 0x81, 0x1F, 0x85, 0x1F, 0xFF, 0xFF, 0xFF, 0xFF]));
    }
}
