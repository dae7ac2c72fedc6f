using System.Diagnostics;

namespace SharedRuntime.Http.Relay.H2;

/// <summary>
/// HPACK's static table (RFC 7541 Appendix A): the 61 fields both ends know without sending them, at indices 1 to 61.
/// </summary>
internal static class HpackStaticTable
{
    /// <summary>The number of entries; dynamic table indices start right after it.</summary>
    public const int Count = 61;

    private static readonly (byte[] Name, byte[] Value)[] Entries =
    [
        F(":authority"u8, ""u8),
        F(":method"u8, "GET"u8),
        F(":method"u8, "POST"u8),
        F(":path"u8, "/"u8),
        F(":path"u8, "/index.html"u8),
        F(":scheme"u8, "http"u8),
        F(":scheme"u8, "https"u8),
        F(":status"u8, "200"u8),
        F(":status"u8, "204"u8),
        F(":status"u8, "206"u8),
        F(":status"u8, "304"u8),
        F(":status"u8, "400"u8),
        F(":status"u8, "404"u8),
        F(":status"u8, "500"u8),
        F("accept-charset"u8, ""u8),
        F("accept-encoding"u8, "gzip, deflate"u8),
        F("accept-language"u8, ""u8),
        F("accept-ranges"u8, ""u8),
        F("accept"u8, ""u8),
        F("access-control-allow-origin"u8, ""u8),
        F("age"u8, ""u8),
        F("allow"u8, ""u8),
        F("authorization"u8, ""u8),
        F("cache-control"u8, ""u8),
        F("content-disposition"u8, ""u8),
        F("content-encoding"u8, ""u8),
        F("content-language"u8, ""u8),
        F("content-length"u8, ""u8),
        F("content-location"u8, ""u8),
        F("content-range"u8, ""u8),
        F("content-type"u8, ""u8),
        F("cookie"u8, ""u8),
        F("date"u8, ""u8),
        F("etag"u8, ""u8),
        F("expect"u8, ""u8),
        F("expires"u8, ""u8),
        F("from"u8, ""u8),
        F("host"u8, ""u8),
        F("if-match"u8, ""u8),
        F("if-modified-since"u8, ""u8),
        F("if-none-match"u8, ""u8),
        F("if-range"u8, ""u8),
        F("if-unmodified-since"u8, ""u8),
        F("last-modified"u8, ""u8),
        F("link"u8, ""u8),
        F("location"u8, ""u8),
        F("max-forwards"u8, ""u8),
        F("proxy-authenticate"u8, ""u8),
        F("proxy-authorization"u8, ""u8),
        F("range"u8, ""u8),
        F("referer"u8, ""u8),
        F("refresh"u8, ""u8),
        F("retry-after"u8, ""u8),
        F("server"u8, ""u8),
        F("set-cookie"u8, ""u8),
        F("strict-transport-security"u8, ""u8),
        F("transfer-encoding"u8, ""u8),
        F("user-agent"u8, ""u8),
        F("vary"u8, ""u8),
        F("via"u8, ""u8),
        F("www-authenticate"u8, ""u8),
    ];

    private static (byte[] Name, byte[] Value) F(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) => (name.ToArray(), value.ToArray());

    /// <summary>The name at <paramref name="index"/>, which the caller has checked is 1 to <see cref="Count"/>.</summary>
    public static ReadOnlySpan<byte> Name(int index) => Entries[index - 1].Name;

    /// <summary>The value at <paramref name="index"/> (empty for most), which the caller has checked is 1 to <see cref="Count"/>.</summary>
    public static ReadOnlySpan<byte> Value(int index) => Entries[index - 1].Value;
}

/// <summary>
/// HPACK's Huffman code for string literals. The code is canonical, so it is rebuilt here from the length of each
/// symbol's code alone: codes of one length are consecutive in symbol order and shorter codes come first.
/// </summary>
internal static class Huffman
{
    private const int Eos = 256;
    private const int MaxCodeLength = 30;
    private const int Invalid = -1;

    /// <summary>What <see cref="DecodeCore"/> returns when only the destination is too small.</summary>
    public const int TooSmall = -2;

    /// <summary>Code length in bits of each symbol 0 to 255 and of EOS (256): the lengths of RFC 7541 Appendix B.</summary>
    private static ReadOnlySpan<byte> CodeLengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 32-47
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 48-63
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 64-79
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 80-95
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 96-111
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 112-127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
        30, // 256 (EOS)
    ];

    /// <summary>Each symbol's code, right-aligned.</summary>
    private static readonly uint[] Codes = new uint[Eos + 1];

    /// <summary>The symbols ordered by code, so that a code's rank within its length finds its symbol.</summary>
    private static readonly short[] SymbolsByCode = new short[Eos + 1];

    /// <summary>Per length, the first code of that length (right-aligned).</summary>
    private static readonly uint[] FirstCode = new uint[MaxCodeLength + 1];

    /// <summary>Per length, where its symbols start in <see cref="SymbolsByCode"/>.</summary>
    private static readonly int[] FirstRank = new int[MaxCodeLength + 1];

    /// <summary>
    /// Per length, the first 32-bit left-aligned window that is not a code of that length or shorter: a window below it
    /// and at or above the previous length's bound holds a code of exactly that length.
    /// </summary>
    private static readonly ulong[] Bound = new ulong[MaxCodeLength + 1];

    /// <summary>
    /// By the next 8 bits: symbol &lt;&lt; 4 | length for a code of at most 8 bits (most bytes of headers), or 0 when
    /// the code is longer and the bounds decide.
    /// </summary>
    private static readonly ushort[] ByFirstByte = new ushort[256];

#pragma warning disable CA1810 // The tables are derived from each other in one pass.
    static Huffman()
#pragma warning restore CA1810
    {
        Span<int> perLength = stackalloc int[MaxCodeLength + 1];
        foreach (var length in CodeLengths)
        {
            perLength[length]++;
        }
        uint code = 0;
        var rank = 0;
        for (var length = 1; length <= MaxCodeLength; length++)
        {
            FirstCode[length] = code;
            FirstRank[length] = rank;
            code += (uint)perLength[length];
            rank += perLength[length];
            Bound[length] = (ulong)code << (32 - length);
            code <<= 1;
        }
        // A complete prefix code: every 30-bit pattern starts with some code.
        Debug.Assert(code == 1u << (MaxCodeLength + 1) && rank == Eos + 1);
        Span<int> next = stackalloc int[MaxCodeLength + 1];
        for (var symbol = 0; symbol <= Eos; symbol++)
        {
            var length = CodeLengths[symbol];
            var within = next[length]++;
            Codes[symbol] = FirstCode[length] + (uint)within;
            SymbolsByCode[FirstRank[length] + within] = (short)symbol;
            if (length <= 8)
            {
                var first = (int)(Codes[symbol] << (8 - length));
                ByFirstByte.AsSpan(first, 1 << (8 - length)).Fill((ushort)(symbol << 4 | length));
            }
        }
    }

    /// <summary>The code of <paramref name="symbol"/> (0 to 256), right-aligned, and its length in bits.</summary>
    public static (uint Code, int Length) CodeOf(int symbol) => (Codes[symbol], CodeLengths[symbol]);

    /// <summary>
    /// Decodes <paramref name="source"/> into <paramref name="destination"/>: the decoded length, or -1 when the input
    /// is not a valid HPACK Huffman string (it holds EOS, or ends in padding longer than 7 bits or not all ones) or the
    /// destination is too small.
    /// </summary>
    public static int Decode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        var written = DecodeCore(source, destination);
        return written < 0 ? -1 : written;
    }

    /// <summary>As <see cref="Decode"/>, but <see cref="TooSmall"/> when only the destination is too small, so that a caller can tell it from bad input.</summary>
    public static int DecodeCore(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        // The next bits, left-aligned: refilled to more than 56 while input remains, so a whole code is always there.
        ulong bits = 0;
        var available = 0;
        var position = 0;
        var written = 0;
        while (true)
        {
            while (available <= 56 && position < source.Length)
            {
                bits |= (ulong)source[position++] << (56 - available);
                available += 8;
            }
            if (available == 0)
            {
                return written;
            }
            var window = (uint)(bits >> 32);
            int length;
            int symbol;
            var entry = ByFirstByte[(int)(window >> 24)];
            if (entry != 0)
            {
                length = entry & 0xF;
                symbol = entry >> 4;
            }
            else
            {
                length = 9;
                while (window >= Bound[length])
                {
                    length++;
                }
                symbol = SymbolsByCode[FirstRank[length] + (int)((window >> (32 - length)) - FirstCode[length])];
            }
            if (length > available)
            {
                // No whole code is left: the rest is padding, the most significant bits of EOS (at most 7 ones).
                return available <= 7 && window >> (32 - available) == (1u << available) - 1 ? written : Invalid;
            }
            if (symbol == Eos)
            {
                return Invalid;
            }
            if (written == destination.Length)
            {
                return TooSmall;
            }
            destination[written++] = (byte)symbol;
            bits <<= length;
            available -= length;
        }
    }

    /// <summary>Encodes <paramref name="source"/>, padded with ones: the encoded length, or -1 when it does not fit <paramref name="destination"/>.</summary>
    public static int Encode(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        ulong bits = 0;
        var pending = 0;
        var written = 0;
        foreach (var symbol in source)
        {
            int length = CodeLengths[symbol];
            bits = bits << length | Codes[symbol];
            pending += length;
            while (pending >= 8)
            {
                if (written == destination.Length)
                {
                    return -1;
                }
                pending -= 8;
                destination[written++] = (byte)(bits >> pending);
            }
        }
        if (pending > 0)
        {
            if (written == destination.Length)
            {
                return -1;
            }
            var padding = 8 - pending;
            destination[written++] = (byte)(bits << padding | ((1u << padding) - 1));
        }
        return written;
    }

    /// <summary>The length <see cref="Encode"/> gives <paramref name="source"/>.</summary>
    public static int EncodedLength(ReadOnlySpan<byte> source)
    {
        long bits = 0;
        foreach (var symbol in source)
        {
            bits += CodeLengths[symbol];
        }
        return (int)((bits + 7) / 8);
    }
}

/// <summary>Receives the fields of a header block in order; the spans are valid only during the call.</summary>
internal interface IHeaderSink
{
    void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value);
}

/// <summary>
/// Decodes the header blocks a peer sends on one connection. The peer is not trusted: anything malformed or over a
/// bound is answered with a problem description (the connection is then closed), never an exception, and what the
/// decoder holds is allocated once: the dynamic table in one buffer of twice its size limit, and decoded Huffman
/// strings in a scratch buffer the size of the header list limit.
/// </summary>
internal sealed class HpackDecoder
{
    /// <summary>What each table entry costs beyond its name and value, and what each field costs in the header list.</summary>
    private const int EntryOverhead = 32;

    /// <summary>Five 7-bit groups reach past int.MaxValue from any prefix; more are refused even when they are zeros.</summary>
    private const int MaxIntegerShift = 28;

    private const string Truncated = "a truncated header block";

    private readonly int _maxTableSize;
    private readonly int _maxHeaderListSize;

    /// <summary>
    /// Names and values of the live entries, oldest first, between <see cref="_dataStart"/> and <see cref="_dataEnd"/>.
    /// New entries are appended; when one does not fit at the end the live ones move to the front. Live data never
    /// exceeds the table size, so twice that always has room.
    /// </summary>
    private readonly byte[] _data;

    /// <summary>The entries as a ring, oldest at <see cref="_oldest"/>; every entry costs at least 32, which bounds their number.</summary>
    private readonly Entry[] _entries;

    private readonly byte[] _scratch;
    private int _capacity;
    private int _oldest;
    private int _count;
    private int _size;
    private int _dataStart;
    private int _dataEnd;

    /// <summary>
    /// A decoder for a connection on which this client announced <paramref name="maxTableSize"/> as its
    /// SETTINGS_HEADER_TABLE_SIZE and <paramref name="maxHeaderListSize"/> as its SETTINGS_MAX_HEADER_LIST_SIZE.
    /// </summary>
    public HpackDecoder(int maxTableSize = 4096, int maxHeaderListSize = 16 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTableSize);
        ArgumentOutOfRangeException.ThrowIfNegative(maxHeaderListSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxTableSize, int.MaxValue / 2);
        _maxTableSize = maxTableSize;
        _maxHeaderListSize = maxHeaderListSize;
        _capacity = maxTableSize;
        _data = new byte[2 * maxTableSize];
        _entries = new Entry[Math.Max(1, maxTableSize / EntryOverhead)];
        _scratch = new byte[maxHeaderListSize];
    }

    /// <summary>The dynamic table's size as HPACK counts it (name, value and 32 per entry).</summary>
    public int TableSize => _size;

    /// <summary>The number of entries in the dynamic table.</summary>
    public int TableCount => _count;

    /// <summary>
    /// Decodes one complete header block (its HEADERS and CONTINUATION fragments joined), giving each field to
    /// <paramref name="sink"/> in order: null when the block is valid, otherwise what is wrong with it. After a problem
    /// the decoder's state no longer matches the peer's and the connection must be closed.
    /// </summary>
    public string? Decode(ReadOnlySpan<byte> block, IHeaderSink sink)
    {
        var position = 0;
        long listSize = 0;
        var fieldSeen = false;
        while (position < block.Length)
        {
            var first = block[position];
            string? problem;
            ReadOnlySpan<byte> name;
            ReadOnlySpan<byte> value;
            if ((first & 0x80) != 0)
            {
                if ((problem = ReadInteger(block, ref position, 7, out var index)) is not null)
                {
                    return problem;
                }
                if (!TryGetField(index, out name, out value))
                {
                    return NotInTable(index);
                }
                if ((problem = Count(ref listSize, name.Length, value.Length)) is not null)
                {
                    return problem;
                }
                sink.OnHeader(name, value);
                fieldSeen = true;
                continue;
            }
            if ((first & 0xE0) == 0x20)
            {
                if (fieldSeen)
                {
                    return "a dynamic table size update after the first field";
                }
                if ((problem = ReadInteger(block, ref position, 5, out var size)) is not null)
                {
                    return problem;
                }
                if (size > _maxTableSize)
                {
                    return $"a dynamic table size update above the {_maxTableSize} bytes allowed";
                }
                Resize(size);
                continue;
            }
            // A literal: with incremental indexing (01, 6-bit name index), or without or never indexed (0000, 0001).
            var indexing = (first & 0x40) != 0;
            if ((problem = ReadInteger(block, ref position, indexing ? 6 : 4, out var nameIndex)) is not null)
            {
                return problem;
            }
            var scratchUsed = 0;
            if (nameIndex == 0)
            {
                if ((problem = ReadString(block, ref position, ListRoom(listSize, 0), ref scratchUsed, out name)) is not null)
                {
                    return problem;
                }
            }
            else if (!TryGetField(nameIndex, out name, out _))
            {
                return NotInTable(nameIndex);
            }
            if ((problem = ReadString(block, ref position, ListRoom(listSize, name.Length), ref scratchUsed, out value)) is not null ||
                (problem = Count(ref listSize, name.Length, value.Length)) is not null)
            {
                return problem;
            }
            sink.OnHeader(name, value);
            fieldSeen = true;
            if (indexing)
            {
                Insert(name, value);
            }
        }
        return null;
    }

    /// <summary>
    /// The field at HPACK <paramref name="index"/>: 1 to 61 in the static table, from 62 the dynamic table newest
    /// first. The spans are valid until the next decode.
    /// </summary>
    public bool TryGetField(int index, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        if (index >= 1 && index <= HpackStaticTable.Count)
        {
            name = HpackStaticTable.Name(index);
            value = HpackStaticTable.Value(index);
            return true;
        }
        var age = index - HpackStaticTable.Count - 1;
        if (age < 0 || age >= _count)
        {
            name = default;
            value = default;
            return false;
        }
        var entry = _entries[(_oldest + _count - 1 - age) % _entries.Length];
        name = _data.AsSpan(entry.Offset, entry.NameLength);
        value = _data.AsSpan(entry.Offset + entry.NameLength, entry.ValueLength);
        return true;
    }

    private static string NotInTable(int index) => $"an HPACK index {index} that is not in the table";

    /// <summary>Room left in the header list for a string of the current field, after <paramref name="taken"/> bytes of it.</summary>
    private long ListRoom(long listSize, int taken) => _maxHeaderListSize - listSize - EntryOverhead - taken;

    private string? Count(ref long listSize, int nameLength, int valueLength)
    {
        listSize += (long)nameLength + valueLength + EntryOverhead;
        return listSize > _maxHeaderListSize ? $"header list longer than {_maxHeaderListSize} bytes" : null;
    }

    /// <summary>An integer with a <paramref name="prefixBits"/>-bit prefix at <paramref name="position"/>, which is in the block.</summary>
    private static string? ReadInteger(ReadOnlySpan<byte> block, ref int position, int prefixBits, out int value)
    {
        var prefixMax = (1 << prefixBits) - 1;
        value = block[position++] & prefixMax;
        if (value < prefixMax)
        {
            return null;
        }
        long result = prefixMax;
        for (var shift = 0; ; shift += 7)
        {
            if (position == block.Length)
            {
                return Truncated;
            }
            if (shift > MaxIntegerShift)
            {
                return "an integer too large";
            }
            var next = block[position++];
            result += (long)(next & 0x7F) << shift;
            if (result > int.MaxValue)
            {
                return "an integer too large";
            }
            if ((next & 0x80) == 0)
            {
                value = (int)result;
                return null;
            }
        }
    }

    /// <summary>
    /// A string literal: a raw one is the block's own bytes; a Huffman one is decoded into the scratch buffer after
    /// <paramref name="scratchUsed"/>, and may take at most <paramref name="room"/> bytes of the header list.
    /// </summary>
    private string? ReadString(ReadOnlySpan<byte> block, scoped ref int position, long room, scoped ref int scratchUsed, out ReadOnlySpan<byte> text)
    {
        text = default;
        if (position == block.Length)
        {
            return Truncated;
        }
        var huffman = (block[position] & 0x80) != 0;
        if (ReadInteger(block, ref position, 7, out var length) is { } problem)
        {
            return problem;
        }
        if (length > block.Length - position)
        {
            return "a string longer than the rest of the header block";
        }
        var source = block.Slice(position, length);
        position += length;
        if (!huffman)
        {
            text = source;
            return null;
        }
        var limit = (int)Math.Clamp(room, 0, _scratch.Length - scratchUsed);
        var decoded = Huffman.DecodeCore(source, _scratch.AsSpan(scratchUsed, limit));
        if (decoded == Huffman.TooSmall)
        {
            return $"header list longer than {_maxHeaderListSize} bytes";
        }
        if (decoded < 0)
        {
            return "a Huffman string that does not decode";
        }
        text = _scratch.AsSpan(scratchUsed, decoded);
        scratchUsed += decoded;
        return null;
    }

    /// <summary>
    /// Adds a field as the newest entry, evicting the oldest until it fits; one larger than the whole table empties it.
    /// The name may be a live entry's, even one this evicts.
    /// </summary>
    private void Insert(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value)
    {
        var length = name.Length + value.Length;
        var size = length + EntryOverhead;
        if (size > _capacity)
        {
            Clear();
            return;
        }
        if (_dataEnd + length > _data.Length)
        {
            // Move the live entries to the front first, and the name with them if it is one of theirs: evicting
            // comes after, so the name is still live and still moved.
            var fromTable = ((ReadOnlySpan<byte>)_data).Overlaps(name, out var nameOffset);
            var shift = _dataStart;
            _data.AsSpan(_dataStart, _dataEnd - _dataStart).CopyTo(_data);
            for (var i = 0; i < _count; i++)
            {
                _entries[(_oldest + i) % _entries.Length].Offset -= shift;
            }
            _dataStart = 0;
            _dataEnd -= shift;
            if (fromTable)
            {
                name = _data.AsSpan(nameOffset - shift, name.Length);
            }
        }
        var offset = _dataEnd;
        name.CopyTo(_data.AsSpan(offset));
        value.CopyTo(_data.AsSpan(offset + name.Length));
        while (_size + size > _capacity)
        {
            EvictOldest(offset);
        }
        _entries[(_oldest + _count) % _entries.Length] = new Entry(offset, name.Length, value.Length);
        _count++;
        _size += size;
        _dataEnd = offset + length;
    }

    /// <summary>Drops the oldest entry; <paramref name="end"/> is where the live data ends, its new start when none is left.</summary>
    private void EvictOldest(int end)
    {
        var entry = _entries[_oldest];
        _size -= entry.NameLength + entry.ValueLength + EntryOverhead;
        _oldest = (_oldest + 1) % _entries.Length;
        _count--;
        _dataStart = _count > 0 ? _entries[_oldest].Offset : end;
    }

    private void Resize(int capacity)
    {
        _capacity = capacity;
        while (_size > capacity)
        {
            EvictOldest(_dataEnd);
        }
        if (_count == 0)
        {
            Clear();
        }
    }

    private void Clear()
    {
        _oldest = 0;
        _count = 0;
        _size = 0;
        _dataStart = 0;
        _dataEnd = 0;
    }

    private struct Entry(int offset, int nameLength, int valueLength)
    {
        public int Offset = offset;
        public readonly int NameLength = nameLength;
        public readonly int ValueLength = valueLength;
    }
}

/// <summary>
/// Writes the fields of a request's header block. This client never adds to the peer's dynamic table, so encoding
/// needs no state: fields are static table entries or literals without indexing, and no Huffman coding.
/// </summary>
internal static class HpackEncoder
{
    /// <summary>Static table index of the name :authority.</summary>
    public const int AuthorityName = 1;

    /// <summary>Static table index of the field :method GET.</summary>
    public const int MethodGet = 2;

    /// <summary>Static table index of the field :method POST.</summary>
    public const int MethodPost = 3;

    /// <summary>Static table index of the name :method (for other methods).</summary>
    public const int MethodName = 2;

    /// <summary>Static table index of the field :path /.</summary>
    public const int PathSlash = 4;

    /// <summary>Static table index of the name :path.</summary>
    public const int PathName = 4;

    /// <summary>Static table index of the field :scheme http.</summary>
    public const int SchemeHttp = 6;

    /// <summary>Static table index of the field :scheme https.</summary>
    public const int SchemeHttps = 7;

    /// <summary>Static table index of the field :status 200.</summary>
    public const int Status200 = 8;

    /// <summary>Static table index of the name :status.</summary>
    public const int StatusName = 8;

    /// <summary>Static table index of the name accept.</summary>
    public const int AcceptName = 19;

    /// <summary>Static table index of the name authorization.</summary>
    public const int AuthorizationName = 23;

    /// <summary>Static table index of the name content-length.</summary>
    public const int ContentLengthName = 28;

    /// <summary>Static table index of the name content-type.</summary>
    public const int ContentTypeName = 31;

    /// <summary>Static table index of the name user-agent.</summary>
    public const int UserAgentName = 58;

    /// <summary>
    /// Writes the static table field at <paramref name="index"/>: bytes written, or -1 when
    /// <paramref name="destination"/> is too small. An index outside the static table is the caller's bug and throws.
    /// </summary>
    public static int WriteIndexed(int index, Span<byte> destination)
    {
        CheckStatic(index);
        return WriteInteger(index, 7, 0x80, destination);
    }

    /// <summary>
    /// Writes a literal field without indexing whose name is the static table's at <paramref name="nameIndex"/> and
    /// whose value is <paramref name="value"/> as is: bytes written, or -1 when <paramref name="destination"/> is too small.
    /// </summary>
    public static int WriteLiteralIndexedName(int nameIndex, ReadOnlySpan<byte> value, Span<byte> destination)
    {
        CheckStatic(nameIndex);
        var head = WriteInteger(nameIndex, 4, 0x00, destination);
        if (head < 0)
        {
            return -1;
        }
        var rest = WriteString(value, destination[head..]);
        return rest < 0 ? -1 : head + rest;
    }

    /// <summary>
    /// Writes a literal field without indexing with a new name, which HTTP/2 requires in lowercase, and a value, both
    /// as is: bytes written, or -1 when <paramref name="destination"/> is too small.
    /// </summary>
    public static int WriteLiteral(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return -1;
        }
        destination[0] = 0x00;
        var nameLength = WriteString(name, destination[1..]);
        if (nameLength < 0)
        {
            return -1;
        }
        var valueLength = WriteString(value, destination[(1 + nameLength)..]);
        return valueLength < 0 ? -1 : 1 + nameLength + valueLength;
    }

    private static void CheckStatic(int index)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(index, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(index, HpackStaticTable.Count);
    }

    private static int WriteString(ReadOnlySpan<byte> text, Span<byte> destination)
    {
        var head = WriteInteger(text.Length, 7, 0x00, destination);
        if (head < 0 || text.Length > destination.Length - head)
        {
            return -1;
        }
        text.CopyTo(destination[head..]);
        return head + text.Length;
    }

    private static int WriteInteger(int value, int prefixBits, byte flags, Span<byte> destination)
    {
        var prefixMax = (1 << prefixBits) - 1;
        if (destination.IsEmpty)
        {
            return -1;
        }
        if (value < prefixMax)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }
        destination[0] = (byte)(flags | prefixMax);
        var rest = (uint)(value - prefixMax);
        var written = 1;
        while (true)
        {
            if (written == destination.Length)
            {
                return -1;
            }
            if (rest < 0x80)
            {
                destination[written++] = (byte)rest;
                return written;
            }
            destination[written++] = (byte)(rest & 0x7F | 0x80);
            rest >>= 7;
        }
    }
}
