using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using SharedRuntime.Configuration;
using AppCallbackGrpc = Dapr.AppCallback.Autogen.Grpc.v1;

namespace SharedRuntime.AppChannel;

internal sealed partial class SubscriptionDiscovery
{
    /// <summary>
    /// The ask made of an app that speaks gRPC: AppCallback/ListTopicSubscriptions, its answer bounded like the HTTP
    /// one (<see cref="MaxAnswerBytes"/>) and read by the same rules, so a subscription refused over HTTP is refused
    /// here too. UNIMPLEMENTED means no subscriptions, as a 404 does over HTTP.
    /// </summary>
    private static async Task<(IReadOnlyList<SubscriptionConfig> Subscriptions, byte[] Hash)> AskGrpcAsync(Entry entry, AppChannel channel, CancellationToken cancellationToken)
    {
        var request = AppCallbackCalls.Request(channel, AppCallbackCalls.AppCallback, "ListTopicSubscriptions", new Google.Protobuf.WellKnownTypes.Empty());
        UnaryAnswer<AppCallbackGrpc.ListTopicSubscriptionsResponse> answer = default;
        await channel.SendAsync(request, async (response, token) =>
        {
            using (response)
            {
                answer = await AppCallbackCalls.ReadUnaryAsync(response, AppCallbackGrpc.ListTopicSubscriptionsResponse.Parser, MaxAnswerBytes, token).ConfigureAwait(false);
            }
            return new AppCallResult { StatusCode = DaprErrorsHttpStatus(answer.Code) };
        }, cancellationToken).ConfigureAwait(false);
        switch (answer.Code)
        {
            case StatusCode.Unimplemented:
                return ([], [0]);
            case StatusCode.ResourceExhausted:
                var refused = new InvalidDataException(answer.Detail);
                refused.Data["hash"] = new byte[] { 1 };
                throw refused;
            case not StatusCode.OK:
                throw new HttpRequestException($"ListTopicSubscriptions answered {answer.Code}: {answer.Detail}");
        }
        var listed = answer.Message!;
        var hash = System.Security.Cryptography.SHA256.HashData(listed.ToByteArray());
        try
        {
            return (Parse(entry.AppId, AsDaprJson(listed)), hash);
        }
        catch (InvalidDataException ex)
        {
            ex.Data["hash"] = hash;
            throw;
        }
    }

    private static int DaprErrorsHttpStatus(StatusCode code) => BuildingBlocks.DaprErrors.HttpStatusOf(code);

    /// <summary>The gRPC answer in the JSON form of <c>GET /dapr/subscribe</c>, which <see cref="Parse"/> reads.</summary>
    private static byte[] AsDaprJson(AppCallbackGrpc.ListTopicSubscriptionsResponse listed)
    {
        var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            foreach (var subscription in listed.Subscriptions)
            {
                writer.WriteStartObject();
                writer.WriteString("pubsubname", subscription.PubsubName);
                writer.WriteString("topic", subscription.Topic);
                if (subscription.Routes is { } routes)
                {
                    writer.WriteStartObject("routes");
                    writer.WriteStartArray("rules");
                    foreach (var rule in routes.Rules)
                    {
                        writer.WriteStartObject();
                        writer.WriteString("match", rule.Match);
                        writer.WriteString("path", rule.Path);
                        writer.WriteEndObject();
                    }
                    writer.WriteEndArray();
                    if (routes.Default is { Length: > 0 } fallback)
                    {
                        writer.WriteString("default", fallback);
                    }
                    writer.WriteEndObject();
                }
                if (subscription.Routes is null || (subscription.Routes.Rules.Count == 0 && subscription.Routes.Default.Length == 0))
                {
                    // A gRPC app is called by method, not path: with no route of its own an event still has one.
                    writer.WriteString("route", "/");
                }
                if (subscription.Metadata.Count > 0)
                {
                    writer.WriteStartObject("metadata");
                    foreach (var (key, value) in subscription.Metadata)
                    {
                        writer.WriteString(key, value);
                    }
                    writer.WriteEndObject();
                }
                if (subscription.DeadLetterTopic is { Length: > 0 } deadLetter)
                {
                    writer.WriteString("deadLetterTopic", deadLetter);
                }
                if (subscription.BulkSubscribe is { } bulk)
                {
                    writer.WriteStartObject("bulkSubscribe");
                    writer.WriteBoolean("enabled", bulk.Enabled);
                    if (bulk.MaxMessagesCount > 0)
                    {
                        writer.WriteNumber("maxMessagesCount", bulk.MaxMessagesCount);
                    }
                    if (bulk.MaxAwaitDurationMs > 0)
                    {
                        writer.WriteNumber("maxAwaitDurationMs", bulk.MaxAwaitDurationMs);
                    }
                    writer.WriteEndObject();
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
        }
        return buffer.ToArray();
    }
}
