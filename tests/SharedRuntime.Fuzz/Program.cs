using SharedRuntime.Configuration;
using SharpFuzz;

namespace SharedRuntime.Fuzz;

/// <summary>
/// One afl-fuzz target per parser of tenant input: <c>match</c> (a subscription rule), <c>trip</c> (a circuit breaker's
/// trip expression), <c>yaml</c> (a resource file, read and parsed) and <c>relay</c> (the invoke relay's readers of
/// a caller's request head, an app's response head and a chunked body). The parser's own refusal is an expected
/// answer; any other exception, a stack overflow or a hang is what afl-fuzz reports as a crash.
/// </summary>
internal static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "relay")
        {
            Fuzzer.OutOfProcess.Run(stream =>
            {
                using var bytes = new MemoryStream();
                stream.CopyTo(bytes);
                Relay(bytes.ToArray());
            });
            return;
        }
        Action<string> target = (args.Length > 0 ? args[0] : "") switch
        {
            "match" => Match,
            "trip" => Trip,
            "yaml" => Yaml,
            var other => throw new ArgumentException($"unknown target '{other}'; use match, trip, yaml or relay"),
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
