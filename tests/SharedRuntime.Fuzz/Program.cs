using SharedRuntime.Configuration;
using SharpFuzz;

namespace SharedRuntime.Fuzz;

/// <summary>
/// One afl-fuzz target per parser of tenant input: <c>match</c> (a subscription rule), <c>trip</c> (a circuit breaker's
/// trip expression) and <c>yaml</c> (a resource file, read and parsed). The parser's own refusal is an expected
/// answer; any other exception, a stack overflow or a hang is what afl-fuzz reports as a crash.
/// </summary>
internal static class Program
{
    public static void Main(string[] args)
    {
        Action<string> target = (args.Length > 0 ? args[0] : "") switch
        {
            "match" => Match,
            "trip" => Trip,
            "yaml" => Yaml,
            var other => throw new ArgumentException($"unknown target '{other}'; use match, trip or yaml"),
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
