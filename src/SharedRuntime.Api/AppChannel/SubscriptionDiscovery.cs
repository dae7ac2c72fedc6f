using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Programmatic subscriptions: asks an app <c>GET {appEndpoint}/dapr/subscribe</c> once per endpoint, in the
/// background, and again with growing pauses while the app cannot answer. Names are read case-insensitively.
/// The answer is the app's, so it is read with bounds: at most <see cref="MaxAnswerBytes"/>, JSON nested at most
/// <see cref="MaxAnswerDepth"/> deep, at most <see cref="SubscriptionLimits.MaxPerApp"/> subscriptions, each within
/// <see cref="SubscriptionLimits"/> and with match expressions <see cref="RouteMatch"/> accepts. An answer over any
/// bound is refused whole: logged once, the app gets no programmatic subscriptions until its endpoint changes or the
/// runtime restarts, and its declarative subscriptions and every other tenant are unaffected.
/// </summary>
internal sealed class SubscriptionDiscovery(AppChannels channels, ILogger logger, Action changed) : IDisposable
{
    /// <summary>Largest answer read; a longer one is refused without reading the rest.</summary>
    public const int MaxAnswerBytes = 1024 * 1024;

    /// <summary>Deepest JSON nesting of an answer (Dapr's format needs five levels).</summary>
    public const int MaxAnswerDepth = 16;

    private static readonly JsonSerializerOptions AnswerOptions = new() { PropertyNameCaseInsensitive = true, MaxDepth = MaxAnswerDepth };

    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    private sealed class Entry(string endpoint)
    {
        public string Endpoint { get; } = endpoint;
        public IReadOnlyList<SubscriptionConfig>? Subscriptions { get; set; }
        public bool Fetching { get; set; }
        public TimeSpan NextPause { get; set; } = TimeSpan.FromSeconds(1);
    }

    /// <summary>What the tenant's app said it subscribes to; empty until it has answered, or when its answer was refused.</summary>
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
            DeliveryLog.Discovered(logger, appId, subscriptions.Count);
            changed();
        }
        catch (InvalidDataException ex)
        {
            // The app answered, badly (InvalidDataException is how Parse refuses an answer). As with a good answer, it
            // is not asked again for this endpoint, so this is logged once.
            lock (_entries)
            {
                entry.Subscriptions = [];
                entry.Fetching = false;
            }
            DeliveryLog.DiscoveryRefused(logger, appId, ex.Message);
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

    private async Task<IReadOnlyList<SubscriptionConfig>> AskAsync(string appId, CancellationToken cancellationToken)
    {
        var channel = channels.Find(appId) ?? throw new InvalidOperationException("the app has no appEndpoint");
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri($"{channel.Endpoint.OriginalString}/dapr/subscribe", UriKind.Absolute));
        if (channel.Config.AppApiToken is { } token)
        {
            request.Headers.TryAddWithoutValidation("dapr-api-token", token);
        }
        byte[]? body = null;
        var tooLarge = false;
        var status = 0;
        // The answer is read inside the call so that its time counts toward the app's timeout; being too large is
        // the answer's fault, not a failure of the app's channel, so it is not thrown from here.
        await channel.SendAsync(request, async (response, token) =>
        {
            using (response)
            {
                status = (int)response.StatusCode;
                if (response.IsSuccessStatusCode)
                {
                    body = await ReadBoundedAsync(response.Content, token).ConfigureAwait(false);
                    tooLarge = body is null;
                }
            }
            return new AppCallResult { StatusCode = status };
        }, cancellationToken).ConfigureAwait(false);
        if (status == 404)
        {
            return [];
        }
        if (tooLarge)
        {
            throw new InvalidDataException($"the answer is larger than {MaxAnswerBytes} bytes");
        }
        if (body is null)
        {
            throw new HttpRequestException($"GET /dapr/subscribe answered {status}");
        }
        return Parse(appId, body);
    }

    /// <summary>The whole body, or null when it is longer than <see cref="MaxAnswerBytes"/> (then the rest is not read).</summary>
    private static async Task<byte[]?> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        if (content.Headers.ContentLength > MaxAnswerBytes)
        {
            return null;
        }
        var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            var buffer = new MemoryStream();
            var chunk = new byte[16 * 1024];
            int read;
            while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
            {
                if (buffer.Length + read > MaxAnswerBytes)
                {
                    return null;
                }
                buffer.Write(chunk, 0, read);
            }
            return buffer.ToArray();
        }
    }

    /// <summary>
    /// Reads Dapr's <c>/dapr/subscribe</c> answer: <c>[{pubsubname, topic, route | routes, metadata, deadLetterTopic}]</c>.
    /// Throws <see cref="InvalidDataException"/> saying what is wrong when the answer is bad or over a bound.
    /// </summary>
    internal static IReadOnlyList<SubscriptionConfig> Parse(string appId, ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxAnswerBytes)
        {
            throw new InvalidDataException($"the answer is larger than {MaxAnswerBytes} bytes");
        }
        List<Item> items;
        try
        {
            items = JsonSerializer.Deserialize<List<Item>>(json, AnswerOptions) ?? [];
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"the answer is not Dapr's JSON format (an array of subscriptions, nested at most {MaxAnswerDepth} deep): {ex.Message}");
        }
        if (items.Count > SubscriptionLimits.MaxPerApp)
        {
            throw new InvalidDataException($"the answer lists {items.Count} subscriptions, more than {SubscriptionLimits.MaxPerApp} subscriptions allowed per app");
        }
        var result = new List<SubscriptionConfig>();
        foreach (var item in items)
        {
            if (item is null || string.IsNullOrEmpty(item.PubsubName) || string.IsNullOrEmpty(item.Topic))
            {
                throw new InvalidDataException("every subscription needs pubsubname and topic");
            }
            var topic = item.Topic.Length <= SubscriptionLimits.MaxNameLength ? item.Topic : item.Topic[..SubscriptionLimits.MaxNameLength] + "...";
            var rules = new List<RouteRule>();
            foreach (var rule in item.Routes?.Rules ?? [])
            {
                if (rule?.Path is null)
                {
                    throw new InvalidDataException($"subscription to {topic}: every rule needs a path");
                }
                try
                {
                    RouteMatch.Parse(rule.Match ?? "");
                }
                catch (FormatException ex)
                {
                    throw new InvalidDataException($"subscription to {topic}: {ex.Message}");
                }
                rules.Add(new RouteRule(rule.Match ?? "", rule.Path));
            }
            var fallback = item.Routes?.Default ?? item.Route;
            if (rules.Count == 0 && fallback is null)
            {
                throw new InvalidDataException($"subscription to {topic} has neither route nor routes");
            }
            var subscription = new SubscriptionConfig
            {
                Name = $"{appId}/{item.PubsubName}/{item.Topic}",
                PubsubName = item.PubsubName,
                Topic = item.Topic,
                Routes = new SubscriptionRoutes(rules, fallback),
                DeadLetterTopic = item.DeadLetterTopic,
                Metadata = item.Metadata?.ToDictionary(m => m.Key, m => m.Value ?? "", StringComparer.Ordinal) ?? [],
                Scopes = [appId],
                Source = $"GET /dapr/subscribe of {appId}",
            };
            if (SubscriptionLimits.Problem(subscription) is { } problem)
            {
                throw new InvalidDataException($"subscription to {topic}: {problem}");
            }
            result.Add(subscription);
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
        public Dictionary<string, string?>? Metadata { get; set; }
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
