using SharedRuntime.Configuration;
using SharpFuzz;

namespace SharedRuntime.Fuzz;

/// <summary>
/// One afl-fuzz target per parser of tenant input: <c>match</c> (a subscription rule), <c>trip</c> (a circuit breaker's
/// trip expression), <c>yaml</c> (a resource file, read and parsed) and <c>relay</c> (the invoke relay's readers of
/// a caller's request head, an app's response head and a chunked body) and <c>hpack</c> (an h2c app's header blocks,
/// decoded in turn on one connection's header table, and made into the head the caller gets). The parser's own refusal is an expected
/// answer; any other exception, a stack overflow or a hang is what afl-fuzz reports as a crash.
/// </summary>
internal static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] is "relay" or "hpack")
        {
            Action<byte[]> binary = args[0] == "relay" ? Relay : Hpack;
            Fuzzer.OutOfProcess.Run(stream =>
            {
                using var bytes = new MemoryStream();
                stream.CopyTo(bytes);
                binary(bytes.ToArray());
            });
            return;
        }
        Action<string> target = (args.Length > 0 ? args[0] : "") switch
        {
            "match" => Match,
            "trip" => Trip,
            "yaml" => Yaml,
            var other => throw new ArgumentException($"unknown target '{other}'; use match, trip, yaml, relay or hpack"),
        };
        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var reader = new StreamReader(stream);
            target(reader.ReadToEnd());
        });
    }

    private static void Match(string text)
    {
        try
        {
            using var cloudEvent = System.Text.Json.JsonDocument.Parse("""{"type":"widget","data":{"price":150,"name":"x"}}""");
            RouteMatch.Parse(text).Matches(cloudEvent.RootElement);
        }
        catch (FormatException)
        {
        }
    }

    /// <summary>The same bytes as a request head, a response head and a chunked body: none of them may throw or hang.</summary>
    private static void Relay(byte[] data)
    {
        var end = Http.Relay.RequestHead.FindEnd(data);
        if (end > 0)
        {
            var request = new Http.Relay.RequestHead();
            if (request.TryParse(data, end))
            {
                _ = data.AsSpan()[request.Target].Length + data.AsSpan()[request.Token].Length + data.AsSpan()[request.Host].Length;
                for (var i = 0; i < request.KeptCount; i++)
                {
                    _ = data.AsSpan()[request.KeptLine(i)].Length;
                }
            }
            var response = Http.Relay.ResponseHead.Parse(data.AsSpan(0, end), toHead: false);
            if (response.Problem is null)
            {
                response.Write(data.AsSpan(0, end), new byte[end + 256], close: true);
            }
        }
        var chunks = new Http.Relay.ChunkedScanner();
        chunks.Scan(data);
    }

    /// <summary>
    /// The bytes cut into header blocks (each led by its length byte) decoded in turn with one small header table, as
    /// an app's answers on one connection are: a problem is the expected refusal; an exception, a table over its size
    /// or a hang is a crash. A block that decodes is made into the caller's head and checked as the relay checks it.
    /// </summary>
    private static void Hpack(byte[] data)
    {
        var decoder = new Http.Relay.H2.HpackDecoder(256, 4096);
        var answer = new Http.Relay.H2.H2Answer(new byte[4096]);
        var at = 0;
        while (at < data.Length)
        {
            var length = Math.Min(data[at], data.Length - at - 1);
            var block = data.AsSpan(at + 1, length);
            at += 1 + length;
            answer.Reset();
            if (decoder.Decode(block, answer) is not null)
            {
                return;
            }
            if (decoder.TableSize > 256)
            {
                throw new InvalidOperationException("the header table grew past its size");
            }
            answer.Finish(endStream: at >= data.Length, toHead: false);
            if (answer.Problem is null && Http.Relay.ResponseHead.Parse(answer.Head, toHead: false) is { Problem: null } head)
            {
                head.Write(answer.Head, new byte[answer.Length + 256], close: false);
            }
        }
    }

    private static void Trip(string text)
    {
        try
        {
            TripExpression.Parse(text).ShouldTrip(new BreakerCounts(10, 4, 6, 0, 6));
        }
        catch (FormatException)
        {
        }
    }

    private static void Yaml(string text)
    {
        try
        {
            ResourceParser.Parse(ResourceReader.ReadText("fuzz.yaml", text), static _ => null);
        }
        catch (ResourceException)
        {
        }
    }
}
