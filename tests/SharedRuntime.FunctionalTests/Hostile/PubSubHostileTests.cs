using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;

namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// A tenant attacking through pub/sub: it cannot make the broker hold topics, names or undelivered events without
/// bound, and a subscriber that never answers cannot stop another tenant from publishing.
/// </summary>
[Collection(HostileTenantsCollection.Name)]
public sealed class PubSubHostileTests(ITestOutputHelper output)
{
    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task AssertPublishedAsync(HttpClient client, string topic)
    {
        using var response = await client.PostAsync($"/v1.0/publish/pubsub/{topic}", Json("""{"ok":true}"""));
        Assert.True(response.StatusCode == HttpStatusCode.NoContent, $"publish to {topic}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task A_flood_of_distinct_topics_stops_at_the_per_app_bound()
    {
        await using var runtime = await HostileRuntime.StartAsync();

        HttpResponseMessage? refused = null;
        for (var i = 0; i < 150 && refused is null; i++)
        {
            var response = await runtime.Attacker.PostAsync($"/v1.0/publish/pubsub/flood-{i}", Json("{}"));
            if (response.StatusCode != HttpStatusCode.NoContent)
            {
                Assert.Equal(100, i); // the default maxTopicsPerApp
                refused = response;
            }
            else
            {
                response.Dispose();
            }
            if (i == 120)
            {
                await AssertPublishedAsync(runtime.Bystander, "bystander-topic"); // during the attack
            }
        }
        Assert.NotNull(refused);
        Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
        await HostileRuntime.AssertClientErrorAsync(refused, "ERR_TENANT_TOPICS_EXCEEDED");
        refused.Dispose();
        await AssertPublishedAsync(runtime.Attacker, "flood-7"); // a topic it already uses still works
        await AssertPublishedAsync(runtime.Bystander, "flood-149"); // its own count

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Huge_and_separator_topic_names_are_refused()
    {
        await using var runtime = await HostileRuntime.StartAsync();

        using (var tooLong = await runtime.Attacker.PostAsync($"/v1.0/publish/pubsub/{new string('t', 257)}", Json("{}")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, tooLong.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(tooLong, "ERR_TENANT_TOPIC_NAME_TOO_LONG");
        }
        using (var nested = await runtime.Attacker.PostAsync($"/v1.0/publish/pubsub/{string.Join('/', Enumerable.Repeat("segment", 700))}", Json("{}")))
        {
            await HostileRuntime.AssertClientErrorAsync(nested, "ERR_TENANT_TOPIC_NAME_TOO_LONG");
        }
        using (var separator = await runtime.Attacker.PostAsync("/v1.0/publish/pubsub/bystander%7C%7Cbystander-probe", Json("{}")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, separator.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(separator, "ERR_MALFORMED_REQUEST");
        }
        await AssertPublishedAsync(runtime.Attacker, new string('t', 256));

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Large_events_for_a_subscriber_that_never_answers_are_bounded_in_bytes_and_do_not_stop_others_publishing()
    {
        // The attacker's own app takes deliveries and never answers.
        await using var hung = await TestApp.StartAsync(async context =>
        {
            try
            {
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            }
            catch (OperationCanceledException)
            {
            }
        });
        var subscriptions = string.Concat(new[] { "news", "sink-1", "sink-2", "sink-3" }.Select(topic => $"""
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: attacker-{topic}
            spec:
              pubsubname: pubsub
              topic: {topic}
              routes:
                default: /never
            scopes:
              - attacker
            ---

            """));
        await using var runtime = await HostileRuntime.StartAsync(
            // Named explicitly: the harness takes "pubsubname: pubsub" in a subscription for the component itself.
            new Dictionary<string, string> { ["subscriptions.yaml"] = subscriptions, ["pubsub.yaml"] = Resources.Component("pubsub", "pubsub.in-memory") },
            attackerTenant: Resources.Tenant("attacker", HostileRuntime.AttackerToken, appEndpoint: hung.Address.ToString().TrimEnd('/')));
        var metadataText = "";
        try
        {
            await Eventually.TrueAsync(async () =>
            {
                using var metadata = await runtime.Attacker.GetAsync("/v1.0/metadata");
                metadataText = await metadata.Content.ReadAsStringAsync();
                return new[] { "news", "sink-1", "sink-2", "sink-3" }.All(t => metadataText.Contains($"\"{t}\"", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(20), "the attacker's subscriptions are active");
        }
        catch (TimeoutException)
        {
            output.WriteLine(metadataText);
            output.WriteLine(runtime.Process.Log);
            throw;
        }

        var event4MB = new string('x', 4_000_000);
        var accepted = 0;
        var refusals = new List<(string Topic, int Status, string Body)>();
        foreach (var topic in new[] { "news", "sink-1", "sink-2", "sink-3" })
        {
            for (var i = 0; i < 12; i++)
            {
                using var response = await runtime.Attacker.PostAsync($"/v1.0/publish/pubsub/{topic}", new StringContent(event4MB, Encoding.UTF8, "text/plain"));
                if (response.StatusCode == HttpStatusCode.NoContent)
                {
                    accepted++;
                    continue;
                }
                refusals.Add((topic, (int)response.StatusCode, await HostileRuntime.AssertClientErrorAsync(response, "ERR_TENANT_PUBSUB_QUEUE_FULL")));
                break;
            }
            // The bystander publishes to the topic the attacker's never-answering app holds full: it is not refused.
            await AssertPublishedAsync(runtime.Bystander, "news");
        }
        Assert.Equal(4, refusals.Count);
        Assert.All(refusals, r => Assert.Equal(429, r.Status));
        // 16 MiB per subscription and 32 MiB per app: at most 8 events of 4 MB are held for the attacker.
        Assert.InRange(accepted, 4, 8);
        output.WriteLine($"accepted {accepted} events of 4 MB before every topic refused");

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }
}
