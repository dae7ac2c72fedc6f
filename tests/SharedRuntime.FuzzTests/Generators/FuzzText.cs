using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace SharedRuntime.FuzzTests.Generators;

/// <summary>
/// The building blocks of every generated input: strings that break assumptions (empty, unicode, lone surrogates,
/// control characters, very long), JSON of valid shapes with random values and of random shapes, and mutations of
/// valid bytes (bit flips, truncation, insertion, deletion).
/// </summary>
internal static class FuzzText
{
    /// <summary>Characters outside ASCII people really send: accents, CJK, emoji halves, RTL marks, NUL.</summary>
    private static readonly Gen<char> OddChar = Gen.OneOf(
        Gen.Char['\u0000', '\u001f'], Gen.Char['\u0080', '\u00ff'], Gen.Char['\u0100', '\u07ff'],
        Gen.Char['\u4e00', '\u4e40'], Gen.Char['\ud800', '\udfff'], Gen.Const('\u202e'), Gen.Const('\ufeff'), Gen.Const('\uffff'));

    /// <summary>Any string: mostly short, sometimes unicode, control characters or very long.</summary>
    public static readonly Gen<string> Any = Gen.Frequency(
        (6, Gen.String[Gen.Char.AlphaNumeric, 1, 16]),
        (2, Gen.Const("")),
        (3, Gen.String[Gen.Frequency((3, Gen.Char.AlphaNumeric), (2, OddChar), (1, Gen.Char["|/\\%.?#&=+ :;\"'{}[]<>*!$~`^"])), 1, 40]),
        (2, Gen.String[Gen.Char, 0, 30]),
        (1, Gen.OneOf(Gen.Const("||"), Gen.Const("a||b"), Gen.Const(".."), Gen.Const("../../x"), Gen.Const("%00"), Gen.Const("null"),
            Gen.Const("\u0000"), Gen.Const("-1"), Gen.Const("9223372036854775808"), Gen.Const("1e400"), Gen.Const("NaN"))),
        (1, Gen.Int[1_000, 20_000].Select(n => new string('x', n))));

    /// <summary>Numbers as JSON text, including the ones parsers choke on.</summary>
    public static readonly Gen<string> NumberText = Gen.Frequency(
        (4, Gen.Int.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (2, Gen.Int[-2, 100].Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (1, Gen.Long.Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))),
        (1, Gen.Double.Select(d => double.IsFinite(d) ? d.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : "0")),
        (1, Gen.OneOf(Gen.Const("1e400"), Gen.Const("-0"), Gen.Const("99999999999999999999999999"), Gen.Const("2147483648"), Gen.Const("-2147483649"), Gen.Const("0.5"))));

    /// <summary>A JSON value of a random shape, nested at most a few levels.</summary>
    public static readonly Gen<JsonNode?> Json = Gen.Recursive<JsonNode?>((depth, self) =>
    {
        var leaf = Gen.Frequency<JsonNode?>(
            (3, Any.Select(s => (JsonNode?)JsonValue.Create(s))),
            (2, NumberText.Select(n => JsonNode.Parse(n))),
            (1, Gen.Bool.Select(b => (JsonNode?)JsonValue.Create(b))),
            (1, Gen.Const<JsonNode?>(() => null)));
        if (depth >= 4)
        {
            return leaf;
        }
        return Gen.Frequency(
            (4, leaf),
            (1, self.Array[0, 6].Select(items => (JsonNode?)new JsonArray(items))),
            (1, Gen.Select(Gen.String[Gen.Frequency((4, Gen.Char.AlphaNumeric), (1, OddChar)), 0, 12].Array[0, 6], self.Array[6],
                (names, values) => (JsonNode?)Object(names.Select((n, i) => (n, values[i]))))));
    });

    /// <summary>Arrays or objects nested deeper than any parser limit (or just under).</summary>
    public static readonly Gen<byte[]> DeepJson = Gen.Select(Gen.Int[1, 400], Gen.Bool, (depth, arrays) =>
        Encoding.UTF8.GetBytes(arrays
            ? new string('[', depth) + new string(']', depth)
            : string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth)));

    public static JsonObject Object(IEnumerable<(string Name, JsonNode? Value)> properties)
    {
        var result = new JsonObject();
        foreach (var (name, value) in properties)
        {
            result[name] = value?.DeepClone();
        }
        return result;
    }

    /// <summary>A string-to-string map as JSON, sometimes with values of other kinds.</summary>
    public static readonly Gen<JsonNode?> StringMapJson = Gen.Frequency(
        (4, Gen.Select(MetadataKey.Array[0, 5], Any.Array[5], (keys, values) => (JsonNode?)Object(keys.Select((k, i) => (k, (JsonNode?)JsonValue.Create(values[i])))))),
        (1, Json));

    /// <summary>Metadata keys the runtime and components read, and others.</summary>
    public static Gen<string> MetadataKey => Gen.Frequency(
        (3, Gen.OneOf(Gen.Const("ttlInSeconds"), Gen.Const("contentType"), Gen.Const("rawPayload"), Gen.Const("partitionKey"),
            Gen.Const("path"), Gen.Const("Content-Type"), Gen.Const("cloudevent.id"), Gen.Const("cloudevent.source"),
            Gen.Const("traceparent"), Gen.Const("consistency"), Gen.Const("namespace"), Gen.Const("statusCode"))),
        (2, Any));

    public static byte[] Utf8(JsonNode? node) => Encoding.UTF8.GetBytes(node?.ToJsonString() ?? "null");

    /// <summary>Valid bytes changed a little: flipped bits, cut short, bytes inserted, removed or repeated.</summary>
    public static Gen<byte[]> Mutate(byte[] valid) =>
        Gen.Select(Gen.Int[0, 4], Gen.Int[0, Math.Max(0, valid.Length)].Array[1, 4], Gen.Byte.Array[1, 8], (kind, positions, noise) =>
        {
            var bytes = valid.ToList();
            foreach (var position in positions)
            {
                var at = Math.Min(position, Math.Max(0, bytes.Count - 1));
                switch (kind)
                {
                    case 0 when bytes.Count > 0:
                        bytes[at] ^= (byte)(1 << (noise[0] & 7));
                        break;
                    case 1:
                        bytes.RemoveRange(Math.Min(position, bytes.Count), bytes.Count - Math.Min(position, bytes.Count));
                        break;
                    case 2:
                        bytes.InsertRange(Math.Min(position, bytes.Count), noise);
                        break;
                    case 3 when bytes.Count > 0:
                        bytes.RemoveRange(at, Math.Min(noise.Length, bytes.Count - at));
                        break;
                    default:
                        bytes.InsertRange(Math.Min(position, bytes.Count), bytes.Take(Math.Min(32, bytes.Count)).ToArray());
                        break;
                }
            }
            return bytes.ToArray();
        });

    public static readonly Gen<byte[]> RandomBytes = Gen.Frequency(
        (4, Gen.Byte.Array[0, 64]),
        (1, Gen.Byte.Array[64, 2048]));

    /// <summary>A body for a route: its valid shape mostly, else a random shape, a mutation, deep nesting or noise.</summary>
    public static Gen<byte[]> Body(Gen<JsonNode?> validShape) => Gen.Frequency(
        (8, validShape.Select(Utf8)),
        (2, Json.Select(Utf8)),
        (3, validShape.Select(Utf8).SelectMany(Mutate)),
        (1, DeepJson),
        (1, RandomBytes),
        (1, Gen.Const(Array.Empty<byte>())),
        (1, Gen.Int[60_000, 80_000].Select(n => Encoding.UTF8.GetBytes("[{\"key\":\"big\",\"value\":\"" + new string('v', n) + "\"}]"))));

    public static string Printable(ReadOnlySpan<byte> bytes, int max = 300)
    {
        var text = new StringBuilder();
        foreach (var b in bytes[..Math.Min(bytes.Length, max)])
        {
            text.Append(b is >= 32 and < 127 and not (byte)'\\' ? (char)b : $"\\x{b:x2}");
        }
        if (bytes.Length > max)
        {
            text.Append($"... ({bytes.Length} bytes)");
        }
        return text.ToString();
    }

    public static string Printable(string text, int max = 300) => Printable(Encoding.UTF8.GetBytes(text), max);

    /// <summary>A header value as its bytes on the wire (Latin-1).</summary>
    public static string PrintableHeader(string value) => Printable(Encoding.Latin1.GetBytes(value), 120);
}
