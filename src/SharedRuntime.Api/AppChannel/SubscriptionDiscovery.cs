using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Programmatic subscriptions: asks a tenant's app <c>GET {appEndpoint}/dapr/subscribe</c> (unless the Tenant sets
/// <c>discoverSubscriptions: false</c>) when the app shows it is up and again when it may have changed, never on a
/// timer unless the Tenant sets <c>subscriptionRefreshInterval</c>: on Knative every request to the app wakes it.
/// What makes the runtime ask:
/// <list type="bullet">
/// <item>a health check with the app's token (<c>healthz</c>, <c>healthz/outbound</c>, gRPC health): SDKs send one while
/// they wait for their runtime at start-up;</item>
/// <item>any other request of the app after <see cref="Silence"/> without one, or after asking failed;</item>
/// <item>its endpoint changing (an endpoint the runtime sees for the first time waits for a sign from the app);</item>
/// <item>a failed ask (no answer, 5xx, open circuit): retried after short pauses (<see cref="FirstRetryPause"/> growing
/// to <see cref="MaxRetryPause"/>) for <see cref="RetryWindow"/>, and at once when the app calls the runtime meanwhile.</item>
/// </list>
/// One ask per app at a time and at most one per <see cref="MinPause"/>; a sign while asking asks once more after.
/// The answer is the app's, so it is read with bounds: at most <see cref="MaxAnswerBytes"/>, JSON nested at most
/// <see cref="MaxAnswerDepth"/> deep, at most <see cref="SubscriptionLimits.MaxPerApp"/> subscriptions, each within
/// <see cref="SubscriptionLimits"/> and with match expressions <see cref="RouteMatch"/> accepts. An answer over any
/// bound is refused whole (logged once per distinct answer): the app has no programmatic subscriptions until it
/// answers well, and its declarative subscriptions and every other tenant are unaffected. A failed ask keeps what
/// the app answered last.
/// </summary>
internal sealed partial class SubscriptionDiscovery : IDisposable
{
    /// <summary>Largest answer read; a longer one is refused without reading the rest.</summary>
    public const int MaxAnswerBytes = 1024 * 1024;

    /// <summary>Deepest JSON nesting of an answer (Dapr's format needs five levels).</summary>
    public const int MaxAnswerDepth = 16;

    /// <summary>A request of the app after this long without one asks it again: it may have restarted.</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(30);

    /// <summary>Least time between the starts of two asks of one app.</summary>
    public static readonly TimeSpan MinPause = TimeSpan.FromSeconds(1);

    /// <summary>Pause after the first failed ask; it doubles after each failure up to <see cref="MaxRetryPause"/>.</summary>
    public static readonly TimeSpan FirstRetryPause = TimeSpan.FromMilliseconds(250);

    public static readonly TimeSpan MaxRetryPause = TimeSpan.FromSeconds(2);

    /// <summary>How long failed asks are retried; after that the app's next request to the runtime asks again.</summary>
    public static readonly TimeSpan RetryWindow = TimeSpan.FromSeconds(30);

    private readonly AppChannels _channels;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposed = new();

    public SubscriptionDiscovery(AppChannels channels, TimeProvider time, ILogger<SubscriptionDiscovery> logger)
    {
        _channels = channels;
        _time = time;
        _logger = logger;
    }

    /// <summary>Raised when an app's programmatic subscriptions changed.</summary>
    public event Action? Changed;

    /// <summary><see cref="Silence"/>, shorter in tests.</summary>
    internal TimeSpan SilenceBeforeAsk { get; init; } = Silence;

    /// <summary>Asks started, for tests.</summary>
    internal long Asks => Interlocked.Read(ref _asks);

    private long _asks;

    /// <summary>One app's discovery state, for one endpoint.</summary>
    private sealed class Entry(string appId, string endpoint, CancellationToken disposed)
    {
        private readonly CancellationTokenSource _stop = CancellationTokenSource.CreateLinkedTokenSource(disposed);
        private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string AppId { get; } = appId;
        public string Endpoint { get; } = endpoint;
        public object Gate { get; } = new();
        public volatile IReadOnlyList<SubscriptionConfig>? Subscriptions;
        public byte[]? AnswerHash;
        public long LastSeen;
        public long LastAsked;
        public volatile bool Failed;
        // Under Gate.
        public TimeSpan? RefreshInterval;
        public bool Running;
        public bool Again;

        public CancellationToken Stopping => _stop.Token;

        /// <summary>Ends a pause of <see cref="WaitAsync"/> early. Under <see cref="Gate"/>.</summary>
        public void Wake() => _wake.TrySetResult();

        /// <summary>Waits <paramref name="pause"/>, or until <see cref="Wake"/>; a wake before the call counts.</summary>
        public async Task WaitAsync(TimeSpan pause, TimeProvider time)
        {
            Task woken;
            lock (Gate)
            {
                if (Again)
                {
                    return;
                }
                if (_wake.Task.IsCompleted)
                {
                    _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                woken = _wake.Task;
            }
            using var delay = CancellationTokenSource.CreateLinkedTokenSource(Stopping);
            await Task.WhenAny(woken, Task.Delay(pause, time, delay.Token)).ConfigureAwait(false);
            await delay.CancelAsync().ConfigureAwait(false);
            Stopping.ThrowIfCancellationRequested();
        }

        public void Stop() => _stop.Cancel();
    }

    /// <summary>
    /// What the tenant's app said it subscribes to; empty until it has answered, or when its answer was refused. Called
    /// on every configuration change: a changed endpoint asks the new one at once; a refresh interval starts polling.
    /// </summary>
    public IReadOnlyList<SubscriptionConfig> For(TenantContext tenant)
    {
        var entry = EntryOf(tenant, out var replaced);
        var refresh = tenant.Config.AppChannel.SubscriptionRefreshInterval;
        bool running;
        lock (entry.Gate)
        {
            entry.RefreshInterval = refresh;
            running = entry.Running;
        }
        if (replaced || (refresh is not null && !running))
        {
            RequestAsk(entry);
        }
        return entry.Subscriptions ?? [];
    }

    /// <summary>Forgets the apps that are not in <paramref name="appIds"/> (tenants removed, or opted out).</summary>
    public void Retain(IReadOnlySet<string> appIds)
    {
        foreach (var (appId, entry) in _entries)
        {
            if (!appIds.Contains(appId) && _entries.TryRemove(new KeyValuePair<string, Entry>(appId, entry)))
            {
                entry.Stop();
            }
        }
    }

    /// <summary>
    /// The tenant's app made a request to the runtime (<paramref name="healthCheck"/>: a health check, which SDKs send
    /// while they start): asks it when it may have changed. Runs on every request: a look-up and, once a second at
    /// most, a write.
    /// </summary>
    public void Seen(TenantContext tenant, bool healthCheck)
    {
        if (!tenant.Config.AppChannel.DiscoverSubscriptions || tenant.Config.AppEndpoint is null)
        {
            return;
        }
        var entry = EntryOf(tenant, out var replaced);
        var now = _time.GetTimestamp();
        var last = Volatile.Read(ref entry.LastSeen);
        var quiet = last == 0 ? TimeSpan.MaxValue : _time.GetElapsedTime(last, now);
        if (quiet >= TimeSpan.FromSeconds(1))
        {
            Volatile.Write(ref entry.LastSeen, now);
        }
        if (replaced || healthCheck || entry.Failed || quiet >= SilenceBeforeAsk)
        {
            RequestAsk(entry);
        }
    }

    private Entry EntryOf(TenantContext tenant, out bool replaced)
    {
        var endpoint = tenant.Config.AppEndpoint!;
        replaced = false;
        if (_entries.TryGetValue(tenant.AppId, out var entry) && entry.Endpoint == endpoint)
        {
            return entry;
        }
        lock (_entries)
        {
            if (_entries.TryGetValue(tenant.AppId, out entry) && entry.Endpoint == endpoint)
            {
                return entry;
            }
            var next = new Entry(tenant.AppId, endpoint, _disposed.Token);
            if (entry is not null)
            {
                // The endpoint changed: the new one is asked at once; what the old one answered holds until it answers.
                next.Subscriptions = entry.Subscriptions;
                entry.Stop();
                replaced = true;
            }
            _entries[tenant.AppId] = next;
            return next;
        }
    }

    private void RequestAsk(Entry entry)
    {
        lock (entry.Gate)
        {
            entry.Again = true;
            if (entry.Running)
            {
                entry.Wake();
                return;
            }
            entry.Running = true;
        }
        _ = RunAsync(entry);
    }

    /// <summary>Asks while there is a reason to; with a refresh interval, keeps asking at that pace.</summary>
    private async Task RunAsync(Entry entry)
    {
        try
        {
            while (true)
            {
                if (Volatile.Read(ref entry.LastAsked) is var lastAsked and not 0 && _time.GetElapsedTime(lastAsked) is var since && since < MinPause)
                {
                    await Task.Delay(MinPause - since, _time, entry.Stopping).ConfigureAwait(false);
                }
                await AskUntilAnsweredAsync(entry).ConfigureAwait(false);
                TimeSpan refresh;
                lock (entry.Gate)
                {
                    if (entry.Again)
                    {
                        continue;
                    }
                    if (entry.RefreshInterval is not { } interval)
                    {
                        entry.Running = false;
                        return;
                    }
                    refresh = interval;
                }
                // Polling, as the Tenant asked: the pause ends early when the app gives a reason to ask.
                await entry.WaitAsync(refresh, _time).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (entry.Stopping.IsCancellationRequested)
        {
            // The endpoint changed, the tenant went away, or the runtime stops.
        }
        catch (Exception ex)
        {
            DeliveryLog.DiscoveryStopped(_logger, entry.AppId, ex);
            lock (entry.Gate)
            {
                entry.Running = false;
            }
        }
    }

    /// <summary>
    /// Asks until the app answers (well or badly), pausing briefly between failures, for <see cref="RetryWindow"/>
    /// at most; then the app is marked failed and its next request to the runtime asks again.
    /// </summary>
    private async Task AskUntilAnsweredAsync(Entry entry)
    {
        var firstFailure = 0L;
        var pause = FirstRetryPause;
        while (true)
        {
            lock (entry.Gate)
            {
                entry.Again = false;
            }
            Volatile.Write(ref entry.LastAsked, _time.GetTimestamp());
            Interlocked.Increment(ref _asks);
            string problem;
            try
            {
                var (subscriptions, hash) = await AskAsync(entry, entry.Stopping).ConfigureAwait(false);
                entry.Failed = false;
                Answered(entry, subscriptions, hash);
                return;
            }
            catch (InvalidDataException ex)
            {
                // The app answered, badly (InvalidDataException is how Parse refuses an answer).
                entry.Failed = false;
                var hash = ex.Data["hash"] as byte[];
                if (hash is null || entry.AnswerHash is null || !hash.AsSpan().SequenceEqual(entry.AnswerHash))
                {
                    DeliveryLog.DiscoveryRefused(_logger, entry.AppId, ex.Message);
                }
                Answered(entry, [], hash);
                return;
            }
            catch (Exception ex) when (!entry.Stopping.IsCancellationRequested)
            {
                problem = ex.Message;
            }
            var now = _time.GetTimestamp();
            if (firstFailure == 0)
            {
                firstFailure = now;
                DeliveryLog.DiscoveryFailed(_logger, entry.AppId, (int)RetryWindow.TotalSeconds, problem);
            }
            else if (_time.GetElapsedTime(firstFailure, now) >= RetryWindow)
            {
                entry.Failed = true;
                DeliveryLog.DiscoveryGaveUp(_logger, entry.AppId, (int)RetryWindow.TotalSeconds, problem);
                return;
            }
            await entry.WaitAsync(pause, _time).ConfigureAwait(false);
            pause = TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, MaxRetryPause.Ticks));
        }
    }

    private void Answered(Entry entry, IReadOnlyList<SubscriptionConfig> subscriptions, byte[]? hash)
    {
        var same = entry.Subscriptions is not null && hash is not null && entry.AnswerHash is not null && hash.AsSpan().SequenceEqual(entry.AnswerHash);
        entry.AnswerHash = hash;
        if (same)
        {
            return;
        }
        entry.Subscriptions = subscriptions;
        DeliveryLog.Discovered(_logger, entry.AppId, subscriptions.Count);
        Changed?.Invoke();
    }

    /// <summary>
    /// One ask: the subscriptions and a hash of the answer that gave them. Throws <see cref="InvalidDataException"/>
    /// (with the answer's hash in <c>Data["hash"]</c>) for an answer that is refused, anything else for a failure.
    /// </summary>
    private async Task<(IReadOnlyList<SubscriptionConfig> Subscriptions, byte[] Hash)> AskAsync(Entry entry, CancellationToken cancellationToken)
    {
        var channel = _channels.Find(entry.AppId);
        if (channel is null || channel.Endpoint.OriginalString != entry.Endpoint)
        {
            throw new InvalidOperationException("the app's channel is not in place yet");
        }
        if (channel.Protocol == Configuration.AppProtocol.Grpc)
        {
            return await AskGrpcAsync(entry, channel, cancellationToken).ConfigureAwait(false);
        }
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
            return ([], [0]);
        }
        if (tooLarge)
        {
            var refused = new InvalidDataException($"the answer is larger than {MaxAnswerBytes} bytes");
            refused.Data["hash"] = new byte[] { 1 };
            throw refused;
        }
        if (body is null)
        {
            throw new HttpRequestException($"GET /dapr/subscribe answered {status}");
        }
        var hash = System.Security.Cryptography.SHA256.HashData(body);
        if (body.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
        {
            return ([], hash); // an app without subscriptions that answers every path with 200
        }
        try
        {
            return (Parse(entry.AppId, body), hash);
        }
        catch (InvalidDataException ex)
        {
            ex.Data["hash"] = hash;
            throw;
        }
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
            items = JsonSerializer.Deserialize(json, AnswerJson.Default.ListItem) ?? [];
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
            var bulk = BulkSubscribeConfig.Of(item.BulkSubscribe?.Enabled, item.BulkSubscribe?.MaxMessagesCount, item.BulkSubscribe?.MaxAwaitDurationMs, out var bulkProblem);
            if (bulkProblem is not null)
            {
                throw new InvalidDataException($"subscription to {topic}: {bulkProblem}");
            }
            var subscription = new SubscriptionConfig
            {
                Name = $"{appId}/{item.PubsubName}/{item.Topic}",
                BulkSubscribe = bulk,
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

    /// <summary>The answer's JSON shape, read without reflection: property names in any case, nested at most <see cref="MaxAnswerDepth"/> deep.</summary>
    [System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNameCaseInsensitive = true, MaxDepth = MaxAnswerDepth)]
    [System.Text.Json.Serialization.JsonSerializable(typeof(List<Item>))]
    private sealed partial class AnswerJson : System.Text.Json.Serialization.JsonSerializerContext;

    private sealed class Item
    {
        public string? PubsubName { get; set; }
        public string? Topic { get; set; }
        public string? Route { get; set; }
        public Routes? Routes { get; set; }
        public Dictionary<string, string?>? Metadata { get; set; }
        public string? DeadLetterTopic { get; set; }
        public Bulk? BulkSubscribe { get; set; }
    }

    private sealed class Bulk
    {
        public bool? Enabled { get; set; }
        public long? MaxMessagesCount { get; set; }
        public long? MaxAwaitDurationMs { get; set; }
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
