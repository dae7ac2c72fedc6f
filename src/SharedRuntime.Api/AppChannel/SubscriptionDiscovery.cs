using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Programmatic subscriptions: asks an app <c>GET {appEndpoint}/dapr/subscribe</c> once per endpoint, in the
/// background, and again with growing pauses while the app cannot answer. Names are read case-insensitively.
/// </summary>
internal sealed class SubscriptionDiscovery(AppChannels channels, ILogger logger, Action changed) : IDisposable
{
    private const int MaxAnswerBytes = 1024 * 1024;
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    private sealed class Entry(string endpoint)
    {
        public string Endpoint { get; } = endpoint;
        public IReadOnlyList<SubscriptionConfig>? Subscriptions { get; set; }
        public bool Fetching { get; set; }
        public TimeSpan NextPause { get; set; } = TimeSpan.FromSeconds(1);
    }

    /// <summary>What the tenant's app said it subscribes to; empty until it has answered.</summary>
    public IReadOnlyList<SubscriptionConfig> For(TenantContext tenant, CancellationToken cancellationToken)
    {
        var endpoint = tenant.Config.AppEndpoint!;
        lock (_entries)
        {
            if (!_entries.TryGetValue(tenant.AppId, out var entry) || entry.Endpoint != endpoint)
            {
                entry = new Entry(endpoint);
                _entries[tenant.AppId] = entry;
            }
            if (entry.Subscriptions is { } known)
            {
                return known;
            }
            if (!entry.Fetching)
            {
                entry.Fetching = true;
                _ = FetchAsync(tenant.AppId, entry);
            }
            return [];
        }
    }

    private async Task FetchAsync(string appId, Entry entry)
    {
        try
        {
            var subscriptions = await AskAsync(appId, _disposed.Token).ConfigureAwait(false);
            lock (_entries)
            {
                entry.Subscriptions = subscriptions;
                entry.Fetching = false;
            }
            DiscoveryLogged(appId, subscriptions.Count);
            changed();
        }
        catch (Exception ex) when (!_disposed.IsCancellationRequested)
        {
            TimeSpan pause;
            lock (_entries)
            {
                pause = entry.NextPause;
                entry.NextPause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
            }
            DeliveryLog.DiscoveryFailed(logger, appId, (int)pause.TotalSeconds, ex.Message);
            try
            {
                await Task.Delay(pause, _disposed.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            lock (_entries)
            {
                entry.Fetching = false;
            }
            changed();
        }
        catch (Exception)
        {
            // Disposed while asking.
        }
    }

    private void DiscoveryLogged(string appId, int count) => DeliveryLog.Discovered(logger, appId, count);

    private async Task<IReadOnlyList<SubscriptionConfig>> AskAsync(string appId, CancellationToken cancellationToken)
    {
        var channel = channels.Find(appId) ?? throw new InvalidOperationException("the app has no appEndpoint");
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{channel.Endpoint.OriginalString}/dapr/subscribe", UriKind.Absolute));
        if (channel.Config.AppApiToken is { } token)
        {
            request.Headers.TryAddWithoutValidation("dapr-api-token", token);
        }
        byte[]? body = null;
        var status = 0;
        await channel.SendAsync(request, async (response, token) =>
        {
            using (response)
            {
                status = (int)response.StatusCode;
                if (response.IsSuccessStatusCode)
                {
                    if (response.Content.Headers.ContentLength > MaxAnswerBytes)
                    {
                        throw new InvalidDataException($"the answer is larger than {MaxAnswerBytes} bytes");
                    }
                    body = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
                }
            }
            return new AppCallResult { StatusCode = status };
        }, cancellationToken).ConfigureAwait(false);
        if (status == 404)
        {
            return [];
        }
        if (body is null)
        {
            throw new HttpRequestException($"GET /dapr/subscribe answered {status}");
        }
        return Parse(appId, body);
    }

    /// <summary>Reads Dapr's <c>/dapr/subscribe</c> answer: <c>[{pubsubname, topic, route | routes, metadata, deadLetterTopic}]</c>.</summary>
    internal static IReadOnlyList<SubscriptionConfig> Parse(string appId, ReadOnlySpan<byte> json)
    {
        var options = new JsonSerializerOptions { PropertyNameCaseInsensitive = true };
        var items = JsonSerializer.Deserialize<List<Item>>(json, options) ?? [];
        var result = new List<SubscriptionConfig>();
        foreach (var item in items)
        {
            if (string.IsNullOrEmpty(item.PubsubName) || string.IsNullOrEmpty(item.Topic))
            {
                throw new InvalidDataException("every subscription needs pubsubname and topic");
            }
            var rules = (item.Routes?.Rules ?? []).Select(r => new RouteRule(r.Match ?? "", r.Path ?? throw new InvalidDataException("every rule needs a path"))).ToList();
            foreach (var rule in rules)
            {
                RouteMatch.Parse(rule.Match);
            }
            var fallback = item.Routes?.Default ?? item.Route;
            if (rules.Count == 0 && fallback is null)
            {
                throw new InvalidDataException($"subscription to {item.Topic} has neither route nor routes");
            }
            result.Add(new SubscriptionConfig
            {
                Name = $"{appId}/{item.PubsubName}/{item.Topic}",
                PubsubName = item.PubsubName,
                Topic = item.Topic,
                Routes = new SubscriptionRoutes(rules, fallback),
                DeadLetterTopic = item.DeadLetterTopic,
                Metadata = item.Metadata ?? [],
                Scopes = [appId],
                Source = $"GET /dapr/subscribe of {appId}",
            });
        }
        return result;
    }

    public void Dispose() => _disposed.Cancel();

    private sealed class Item
    {
        public string? PubsubName { get; set; }
        public string? Topic { get; set; }
        public string? Route { get; set; }
        public Routes? Routes { get; set; }
        public Dictionary<string, string>? Metadata { get; set; }
        public string? DeadLetterTopic { get; set; }
    }

    private sealed class Routes
    {
        public List<Rule>? Rules { get; set; }
        public string? Default { get; set; }
    }

    private sealed class Rule
    {
        public string? Match { get; set; }
        public string? Path { get; set; }
    }
}
