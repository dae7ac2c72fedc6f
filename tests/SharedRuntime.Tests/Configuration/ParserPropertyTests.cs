using System.Text;
using System.Text.Json;
using CsCheck;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

/// <summary>
/// Generated input for every parser of tenant input: tokens of its grammar in any order, random text, and deep
/// nesting. Whatever comes in, the parser answers with its own error type or a result that evaluates without
/// throwing; nothing else escapes and nothing recurses without bound.
/// </summary>
public class ParserPropertyTests
{
    private const int Cases = 4000;

    private static readonly string[] MatchTokens =
    [
        "event.type", "event.data.price", "event.data.huge", "event.data.lone", "event", "event.", ".", "==", "!=", ">=", "<=", ">", "<",
        "&&", "||", "!", "(", ")", "\"widget\"", "'x'", "\"", "'", "150", "-2.5e3", "1e400", "true", "false", " ", "\t", "\u00e9", "\0",
    ];

    private static readonly string[] TripTokens =
    [
        "requests", "totalSuccesses", "totalFailures", "consecutiveSuccesses", "consecutiveFailures", "unknown", "5", "99999999999999999999",
        "==", "!=", ">=", "<=", ">", "<", "&&", "||", "(", ")", "!", " ", "-1",
    ];

    private static readonly JsonDocument Event = JsonDocument.Parse("""{"type":"widget","data":{"price":150,"huge":1e400,"lone":"\ud800"}}""");

    private static Gen<string> Tokens(string[] tokens, int max) => Gen.OneOf(tokens).Array[0, max].Select(a => string.Concat(a));

    /// <summary>Random text: arbitrary characters, and arbitrary bytes read as UTF-8.</summary>
    private static readonly Gen<string> AnyText = Gen.OneOf(Gen.String[0, 200], Gen.Byte.Array[0, 200].Select(b => Encoding.UTF8.GetString(b)));

    /// <summary>Nesting from shallow to far past every bound, around a valid core.</summary>
    private static Gen<string> Nested(string[] openers, string core, string closer, int max = 20_000) =>
        Gen.Select(Gen.OneOf(openers), Gen.Int[0, max], Gen.Int[0, max], (open, depth, closing) =>
            string.Concat(Enumerable.Repeat(open, depth)) + core + string.Concat(Enumerable.Repeat(closer, closing)));

    [Fact]
    public void Route_matches_from_grammar_tokens_parse_or_fail_with_a_format_error() =>
        Gen.OneOf(Tokens(MatchTokens, 60), AnyText).Sample(MatchParsesOrRefuses, iter: Cases);

    [Fact]
    public void Deeply_nested_route_matches_parse_or_fail_with_a_format_error() =>
        Nested(["!", "(", "!(", "( "], "event.type == \"widget\"", ")").Sample(MatchParsesOrRefuses, iter: Cases);

    [Fact]
    public void Trip_expressions_from_grammar_tokens_parse_or_fail_with_a_format_error() =>
        Gen.OneOf(Tokens(TripTokens, 60), AnyText, Nested(["(", "( "], "consecutiveFailures > 5", ")")).Sample(TripParsesOrRefuses, iter: Cases);

    private static readonly string[] AnswerTokens =
    [
        "[", "]", "{", "}", ",", ":", "\"pubsubname\"", "\"topic\"", "\"route\"", "\"routes\"", "\"rules\"", "\"match\"", "\"path\"",
        "\"default\"", "\"metadata\"", "\"deadLetterTopic\"", "\"p\"", "\"t\"", "\"/r\"", "\"event.a == 1\"", "\"!!!(\"", "null", "1", "true", "\"",
    ];

    [Fact]
    public void Subscribe_answers_parse_or_fail_with_invalid_data() =>
        Gen.OneOf(
                Tokens(AnswerTokens, 80),
                AnyText,
                Nested(["[", "{\"a\":"], "1", "]"),
                Gen.Int[0, 300].Select(n => "[" + string.Join(",", Enumerable.Repeat("""{"pubsubname":"p","topic":"t","route":"/r"}""", n)) + "]"))
            .Sample(answer =>
            {
                try
                {
                    var subscriptions = SubscriptionDiscovery.Parse("orders", Encoding.UTF8.GetBytes(answer));
                    Assert.True(subscriptions.Count <= SubscriptionLimits.MaxPerApp);
                    Assert.All(subscriptions, s => Assert.Null(SubscriptionLimits.Problem(s)));
                }
                catch (InvalidDataException)
                {
                }
            }, iter: Cases);

    private static readonly string[] YamlTokens =
    [
        "apiVersion: dapr.io/v1alpha1\n", "apiVersion: dapr.io/v2alpha1\n", "apiVersion: sharedruntime.io/v1alpha1\n", "kind: Subscription\n",
        "kind: Component\n", "kind: Tenant\n", "kind: Resiliency\n", "kind: Configuration\n", "metadata:\n  name: x\n", "spec:\n", "  ", "- ",
        "[", "]", "{", "}", ": ", ", ", "&a ", "*a", "!!str ", "!!map ", "\n", "---\n", "'", "\"", "? ", "|\n", ">\n", "# c\n", "%YAML 1.2\n",
        "pubsubname: p\n", "topic: t\n", "route: /r\n", "  routes:\n    rules:\n      - match: ", "event.a == 1\n", "scopes: [a, b]\n",
        "timeout: 99999999999h\n", "apiToken: {value: t}\n", "type: state.in-memory\n", "metadata: [{name: a, value: {b: c}}]\n", "1", "null",
        "~", "<<: {a: 1}\n", "...", "!!", "!<x>", "\r", "%TAG ! tag:x,2000:\n",
    ];

    [Fact]
    public void Resource_files_read_or_fail_with_a_resource_error() =>
        Gen.OneOf(Tokens(YamlTokens, 80), AnyText, Nested(["[", "{a: ", "- "], "1", "]", max: 1000))
            .Sample(text =>
            {
                try
                {
                    ResourceParser.Parse(ResourceReader.ReadText("fuzz.yaml", text), _ => null);
                }
                catch (ResourceException)
                {
                }
            }, iter: Cases);

    private static void MatchParsesOrRefuses(string text)
    {
        RouteMatch match;
        try
        {
            match = RouteMatch.Parse(text);
        }
        catch (FormatException ex)
        {
            Assert.True(ex.Message.Length < 400, "a refusal quotes the expression only in part");
            return;
        }
        match.Matches(Event.RootElement);
    }

    private static void TripParsesOrRefuses(string text)
    {
        TripExpression trip;
        try
        {
            trip = TripExpression.Parse(text);
        }
        catch (FormatException)
        {
            return;
        }
        trip.ShouldTrip(new BreakerCounts(10, 4, 6, 0, 6));
    }
}
