using System.Text;
using System.Text.Json;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

/// <summary>
/// Every parser of what a tenant or its app sends has a bound, and going past it is that parser's own error, never a
/// crash. These inputs overflowed the stack before the bounds (checked out of process by ParsingHostileTests).
/// </summary>
public class BoundedParsingTests
{
    private static readonly JsonDocument Event = JsonDocument.Parse("""{"type":"widget","data":{"price":150,"huge":1e400,"lone":"\ud800"}}""");

    [Theory]
    [InlineData('!', 300_000)]
    [InlineData('(', 100_000)]
    public void A_match_longer_than_the_bound_is_refused_without_quoting_it(char repeated, int count)
    {
        var error = Assert.Throws<FormatException>(() => RouteMatch.Parse(new string(repeated, count) + "event.a == 1"));
        Assert.Contains($"longer than the {RouteMatch.MaxLength} allowed", error.Message, StringComparison.Ordinal);
        Assert.True(error.Message.Length < 200, error.Message);
    }

    [Theory]
    [InlineData("!", "")]
    [InlineData("(", ")")]
    [InlineData("!(", ")")]
    public void A_match_nested_deeper_than_the_bound_is_refused(string open, string close)
    {
        var depth = RouteMatch.MaxDepth + 1;
        var text = string.Concat(Enumerable.Repeat(open, depth)) + "event.type == \"widget\"" + string.Concat(Enumerable.Repeat(close, depth));
        var error = Assert.Throws<FormatException>(() => RouteMatch.Parse(text));
        Assert.Contains($"nested more than {RouteMatch.MaxDepth} deep", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_match_nested_up_to_the_bound_evaluates()
    {
        var nots = string.Concat(Enumerable.Repeat("!(", RouteMatch.MaxDepth / 2));
        var text = nots + "event.type == \"widget\"" + new string(')', RouteMatch.MaxDepth / 2);
        Assert.True(RouteMatch.Parse(text).Matches(Event.RootElement)); // an even number of negations
    }

    [Fact]
    public void A_long_chain_of_ands_and_ors_evaluates_in_a_loop()
    {
        const string term = "event.data.price > 1 && ";
        var chain = string.Concat(Enumerable.Repeat(term, (RouteMatch.MaxLength - 30) / term.Length)) + "event.type == \"widget\"";
        Assert.True(chain.Length <= RouteMatch.MaxLength);
        Assert.True(RouteMatch.Parse(chain).Matches(Event.RootElement));
        var ors = string.Concat(Enumerable.Repeat("event.x == 1 || ", 200)) + "event.type == \"gadget\"";
        Assert.False(RouteMatch.Parse(ors).Matches(Event.RootElement));
    }

    [Theory]
    [InlineData("event.data.huge > 1", true)] // read as infinity
    [InlineData("event.data.huge == 1", false)]
    [InlineData("event.data.lone == \"x\"", false)]
    [InlineData("event.data.lone != \"x\"", true)]
    public void Values_out_of_range_or_not_valid_text_compare_without_throwing(string text, bool expected) =>
        Assert.Equal(expected, RouteMatch.Parse(text).Matches(Event.RootElement));

    [Fact]
    public void A_trip_expression_over_the_bounds_is_refused()
    {
        var tooLong = Assert.Throws<FormatException>(() => TripExpression.Parse(new string('(', 100_000) + "requests > 1"));
        Assert.Contains("longer than", tooLong.Message, StringComparison.Ordinal);
        var depth = TripExpression.MaxDepth + 1;
        var tooDeep = Assert.Throws<FormatException>(() => TripExpression.Parse(new string('(', depth) + "requests > 1" + new string(')', depth)));
        Assert.Contains("nested more than", tooDeep.Message, StringComparison.Ordinal);
        var chain = string.Concat(Enumerable.Repeat("requests > 1 && ", 200)) + "consecutiveFailures > 5";
        Assert.True(TripExpression.Parse(chain).ShouldTrip(new BreakerCounts(5, 0, 6, 0, 6)));
    }

    [Theory]
    [InlineData("99999999999h")]
    [InlineData("9999999999999999999999999999999999999999999999999s")]
    [InlineData("256204779h")]
    public void A_duration_too_long_for_a_timespan_is_not_a_duration(string text)
    {
        Assert.False(Durations.TryParse(text, out _));
        var error = Assert.Throws<ResourceException>(() => Parse($"""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec:
              policies:
                timeouts:
                  long: {text}
            """));
        Assert.Equal("spec.policies.timeouts.long", error.Field);
    }

    [Fact]
    public void The_longest_duration_a_timespan_holds_is_read()
    {
        Assert.True(Durations.TryParse("256204778h", out var value));
        Assert.Equal(256204778, (long)value.TotalHours);
        Assert.True(Durations.TryParse("5µs", out var micro));
        Assert.Equal(TimeSpan.FromMicroseconds(5), micro);
    }

    [Theory]
    [InlineData(100_000, "[", "]")]
    [InlineData(100_000, "{a: ", "}")]
    [InlineData(ResourceReader.MaxDepth + 1, "[", "]")]
    public void Yaml_nested_deeper_than_the_bound_is_refused(int depth, string open, string close)
    {
        var nested = string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth));
        var error = Assert.Throws<ResourceException>(() => ResourceReader.ReadText("deep.yaml", $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: c
            spec:
              value: {nested}
            """));
        Assert.Contains($"nested more than {ResourceReader.MaxDepth} deep", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("... x")] // YamlDotNet: InvalidOperationException "The scanner should contain no more tokens"
    [InlineData("...\r!.")]
    [InlineData("!![")] // YamlDotNet: ArgumentException "Global tags must be valid URIs"
    public void Yaml_that_YamlDotNet_refuses_with_other_exceptions_is_a_resource_error(string text)
    {
        var error = Assert.Throws<ResourceException>(() => ResourceReader.ReadText("fuzzed.yaml", text));
        Assert.Contains("invalid YAML", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Yaml_aliases_are_refused()
    {
        var error = Assert.Throws<ResourceException>(() => ResourceReader.ReadText("laughs.yaml", """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: c
            spec:
              type: state.in-memory
              metadata:
                - name: a
                  value: &a [x, x, x, x, x, x, x, x, x]
                - name: b
                  value: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
            """));
        Assert.Contains("aliases", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_app_gets_at_most_the_bound_of_declarative_subscriptions_counting_unscoped_ones()
    {
        var yaml = new StringBuilder();
        for (var i = 0; i < 5; i++)
        {
            yaml.Append(Subscription($"everyone-{i}", scopes: null));
        }
        for (var i = 0; i < SubscriptionLimits.MaxPerApp; i++)
        {
            yaml.Append(Subscription($"orders-{i}", scopes: "orders"));
        }
        yaml.Append(Subscription("billing-0", scopes: "billing"));

        var set = Parse(yaml.ToString());

        Assert.Equal(SubscriptionLimits.MaxPerApp, set.Subscriptions.Count(s => s.AppliesTo("orders")));
        Assert.Equal(6, set.Subscriptions.Count(s => s.AppliesTo("billing")));
        Assert.Equal(5, set.RejectedSubscriptions.Count);
        var (error, scopes) = set.RejectedSubscriptions[0];
        Assert.Equal("Subscription/orders-95", error.Document);
        Assert.Contains($"orders already has {SubscriptionLimits.MaxPerApp} subscriptions", error.Problem, StringComparison.Ordinal);
        Assert.Equal(["orders"], scopes);
    }

    [Fact]
    public void A_subscription_over_a_name_bound_is_refused_alone()
    {
        var set = Parse(Subscription("long", scopes: "orders", topic: new string('t', SubscriptionLimits.MaxNameLength + 1)) + Subscription("fine", scopes: "orders"));
        Assert.Equal("fine", Assert.Single(set.Subscriptions).Name);
        Assert.Contains("longer than", Assert.Single(set.RejectedSubscriptions).Error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_subscribe_answer_over_its_bounds_is_refused_saying_why()
    {
        string Many(int count) => "[" + string.Join(",", Enumerable.Range(0, count).Select(i => $$"""{"pubsubname":"p","topic":"t{{i}}","route":"/r"}""")) + "]";
        Assert.Equal(SubscriptionLimits.MaxPerApp, SubscriptionDiscovery.Parse("orders", Encoding.UTF8.GetBytes(Many(SubscriptionLimits.MaxPerApp))).Count);
        Assert.Contains("more than 100 subscriptions", Refused(Many(10_000)), StringComparison.Ordinal);

        var deepJson = """[{"pubsubname":"p","topic":"t","route":"/r","x":""" + new string('[', 100_000) + new string(']', 100_000) + "}]";
        Assert.Contains("depth", Refused(deepJson), StringComparison.Ordinal);

        var deepMatch = JsonSerializer.Serialize(new[] { new { pubsubname = "p", topic = "t", routes = new { rules = new[] { new { match = new string('!', 300_000) + "event.a == 1", path = "/x" } } } } });
        Assert.Contains("longer than", Refused(deepMatch), StringComparison.Ordinal);

        Assert.Contains("larger than", Refused(new string(' ', SubscriptionDiscovery.MaxAnswerBytes + 1)), StringComparison.Ordinal);
        Assert.Contains("metadata", Refused($$$"""[{"pubsubname":"p","topic":"t","route":"/r","metadata":{"k":"{{{new string('v', 2000)}}}"}}]"""), StringComparison.Ordinal);
        Assert.Contains("topic", Refused($$"""[{"pubsubname":"p","topic":"{{new string('t', 300)}}","route":"/r"}]"""), StringComparison.Ordinal);

        var nullMetadata = Assert.Single(SubscriptionDiscovery.Parse("orders", """[{"pubsubname":"p","topic":"t","route":"/r","metadata":{"k":null}}]"""u8));
        Assert.Equal("", nullMetadata.Metadata["k"]);
    }

    private static string Refused(string answer) =>
        Assert.Throws<InvalidDataException>(() => SubscriptionDiscovery.Parse("orders", Encoding.UTF8.GetBytes(answer))).Message;

    private static ResourceSet Parse(string yaml) => ResourceParser.Parse(ResourceReader.ReadText("app.yaml", yaml), _ => null);

    private static string Subscription(string name, string? scopes, string topic = "orders") => $"""
        apiVersion: dapr.io/v1alpha1
        kind: Subscription
        metadata:
          name: {name}
        spec:
          pubsubname: pubsub
          topic: {topic}
          route: /orders
        {(scopes is null ? "" : $"scopes: [{scopes}]\n")}---

        """;
}
