using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Keeps one broker subscription per tenant, pub/sub component and topic that the tenant subscribes to
/// (declaratively or through <c>GET /dapr/subscribe</c>), each in the tenant's own consumer group, and delivers
/// its events to the app. Follows every configuration change; a subscription whose settings changed keeps its
/// broker subscription and takes the new routes at once.
/// </summary>
internal sealed partial class SubscriptionDelivery : IHostedService, IAsyncDisposable
{
    private readonly RuntimeConfiguration _configuration;
    private readonly EventDelivery _delivery;
    private readonly TimeProvider _time;
    private readonly SubscriptionDiscovery _discovery;
    private readonly ILogger _logger;
    private readonly AppHealthProbes? _health;
    private readonly Channel<bool> _changes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Dictionary<(string AppId, string PubsubName, string Topic), ActiveSubscription> _active = [];
    private readonly CancellationTokenSource _stopping = new();
    private Task _loop = Task.CompletedTask;

    public SubscriptionDelivery(RuntimeConfiguration configuration, AppChannels channels, ResiliencyPolicies policies, Metrics.RuntimeMetrics metrics,
        SubscriptionDiscovery discovery, TimeProvider time, ILogger<SubscriptionDelivery> logger,
        Diagnostics.RuntimeTracing? tracing = null, AppHealthProbes? health = null)
    {
        _health = health;
        _configuration = configuration;
        _logger = logger;
        _delivery = new EventDelivery(channels, policies, metrics, time, logger, tracing);
        _time = time;
        _discovery = discovery;
        _discovery.Changed += Signal;
        if (_health is not null)
        {
            _health.Changed += Signal;
        }
    }

    /// <summary>The subscriptions being delivered now, for the metadata API and tests.</summary>
    public IReadOnlyList<SubscriptionConfig> ActiveFor(string appId)
    {
        lock (_active)
        {
            return _active.Values.Where(a => a.AppId == appId).Select(a => a.Config).ToList();
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _configuration.Changed += _ => Signal();
        Signal();
        _loop = RunAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    private void Signal() => _changes.Writer.TryWrite(true);

    private async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (await _changes.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                _changes.Reader.TryRead(out _);
                try
                {
                    await ReconcileAsync(_configuration.Current, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    DeliveryLog.ReconcileFailed(_logger, ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    private async Task ReconcileAsync(RuntimeSnapshot snapshot, CancellationToken cancellationToken)
    {
        var desired = new Dictionary<(string, string, string), (SubscriptionConfig Config, IPubSubBroker Broker, int MaxInFlight)>();
        var discovering = new HashSet<string>(StringComparer.Ordinal);
        // Only tenants with an app to deliver to are ordered and looked at: a reload among thousands of tenants that have
        // none costs them nothing here.
        foreach (var tenant in snapshot.Tenants.Values.Where(static t => t.Config.AppEndpoint is not null).OrderBy(t => t.AppId, StringComparer.Ordinal))
        {
            var subscriptions = snapshot.Resources.Subscriptions.Where(s => s.AppliesTo(tenant.Config)).ToList();
            if (tenant.Config.AppChannel.DiscoverSubscriptions)
            {
                subscriptions.AddRange(_discovery.For(tenant));
                discovering.Add(tenant.AppId);
            }
            if (_health?.IsHealthy(tenant.AppId) == false)
            {
                continue; // an unhealthy app's subscriptions stop until it is healthy again; its events wait in the broker
            }
            foreach (var subscription in subscriptions)
            {
                var entry = snapshot.FindComponent(tenant, "pubsub", subscription.PubsubName);
                if (entry?.Instance is not IPubSubBroker broker)
                {
                    DeliveryLog.NoBroker(_logger, tenant.AppId, subscription.Name, subscription.PubsubName);
                    continue;
                }
                if (!MaySubscribe(entry, broker, tenant.Config.AppId, subscription))
                {
                    continue;
                }
                var key = (tenant.AppId, subscription.PubsubName, subscription.Topic);
                // A bulk subscription takes as many events at once as one batch holds; others as many as the app's channel.
                var maxInFlight = subscription.BulkSubscribe?.MaxMessagesCount ?? tenant.Config.AppChannel.MaxConcurrency;
                if (!desired.TryAdd(key, (subscription, broker, maxInFlight)))
                {
                    DeliveryLog.Duplicate(_logger, tenant.AppId, subscription.PubsubName, subscription.Topic, subscription.Source);
                }
            }
        }

        _discovery.Retain(discovering);

        List<((string, string, string) Key, ActiveSubscription Active)> stopped = [];
        lock (_active)
        {
            foreach (var (key, active) in _active)
            {
                if (!desired.TryGetValue(key, out var want) || !ReferenceEquals(want.Broker, active.Broker) || want.MaxInFlight != active.MaxInFlight ||
                    want.Config.BulkSubscribe != active.Config.BulkSubscribe)
                {
                    stopped.Add((key, active));
                }
                else
                {
                    active.Update(want.Config);
                }
            }
        }
        // Listed as active until it has stopped: once ActiveFor no longer shows it, nothing more is delivered by it.
        foreach (var (key, active) in stopped)
        {
            await active.DisposeAsync().ConfigureAwait(false);
            lock (_active)
            {
                _active.Remove(key);
            }
            DeliveryLog.Unsubscribed(_logger, active.AppId, active.PubsubName, active.Topic);
        }
        foreach (var (key, want) in desired)
        {
            bool exists;
            lock (_active)
            {
                exists = _active.ContainsKey(key);
            }
            if (exists)
            {
                continue;
            }
            var active = new ActiveSubscription(key.Item1, want.Config, want.Broker, want.MaxInFlight);
            try
            {
                await active.StartAsync(_delivery, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                DeliveryLog.SubscribeFailed(_logger, key.Item1, key.Item2, key.Item3, ex.Message);
                continue;
            }
            lock (_active)
            {
                _active[key] = active;
            }
            DeliveryLog.Subscribed(_logger, key.Item1, key.Item2, key.Item3, want.Config.Source);
        }
    }

    /// <summary>
    /// The same rules for every kind of subscription, declared or discovered: a valid topic name, Dapr's
    /// <c>subscriptionScopes</c>, <c>allowedTopics</c> and <c>protectedTopics</c>; a dead-letter topic the app may
    /// publish to (the runtime publishes there for it); and both within the app's <c>maxTopicsPerApp</c>.
    /// </summary>
    private bool MaySubscribe(ComponentEntry entry, IPubSubBroker broker, string appId, SubscriptionConfig subscription)
    {
        var rules = entry.Topics!;
        var deadLetter = subscription.DeadLetterTopic is { Length: > 0 } topic ? topic : null;
        string? reason = null;
        if (BuildingBlocks.TopicNames.Invalid(subscription.Topic) is { } invalid)
        {
            reason = invalid.Message;
        }
        else if (!rules.MaySubscribe(appId, subscription.Topic))
        {
            DeliveryLog.TopicNotAllowed(_logger, appId, subscription.Topic, subscription.PubsubName);
            return false;
        }
        else if (deadLetter is not null && BuildingBlocks.TopicNames.Invalid(deadLetter) is { } invalidDeadLetter)
        {
            reason = $"dead-letter topic: {invalidDeadLetter.Message}";
        }
        else if (deadLetter is not null && !rules.MayPublish(appId, deadLetter))
        {
            reason = $"the app may not publish to its dead-letter topic {deadLetter} (publishingScopes, allowedTopics or protectedTopics)";
        }
        else if (!rules.TryUse(broker, appId, subscription.Topic) || (deadLetter is not null && !rules.TryUse(broker, appId, deadLetter)))
        {
            reason = $"the app already uses {rules.MaxTopicsPerApp} topics of this pubsub, its limit (maxTopicsPerApp)";
        }
        if (reason is not null)
        {
            DeliveryLog.SubscriptionRefused(_logger, appId, subscription.Name, subscription.PubsubName, subscription.Topic, reason);
            return false;
        }
        return true;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(false);
        List<ActiveSubscription> all;
        lock (_active)
        {
            all = [.. _active.Values];
            _active.Clear();
        }
        // Events not yet delivered stay in the broker.
        await Task.WhenAll(all.Select(a => a.DisposeAsync().AsTask())).WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await StopAsync(CancellationToken.None).ConfigureAwait(false);
        }
        _discovery.Changed -= Signal;
        if (_health is not null)
        {
            _health.Changed -= Signal;
        }
    }

    /// <summary>One broker subscription of one tenant; its routes can change while it runs.</summary>
    internal sealed class ActiveSubscription(string appId, SubscriptionConfig config, IPubSubBroker broker, int maxInFlight) : IAsyncDisposable
    {
        private volatile CompiledSubscription _compiled = new(config);
        private IAsyncDisposable? _subscription;

        public string AppId { get; } = appId;
        public string PubsubName => config.PubsubName;
        public string Topic => config.Topic;
        public IPubSubBroker Broker { get; } = broker;
        public int MaxInFlight { get; } = maxInFlight;

        /// <summary>Where its deliveries wait for a slot of the app's channel.</summary>
        public string DeliveryLine { get; } = AppChannel.DeliveryLine(config.PubsubName, config.Topic);
        public SubscriptionConfig Config => _compiled.Config;
        public CompiledSubscription Compiled => _compiled;

        /// <summary>Where a bulk subscription's events wait to be sent together; null for one sent event by event.</summary>
        public BulkBatcher? Batches { get; private set; }

        public void Update(SubscriptionConfig next) => _compiled = new CompiledSubscription(next);

        public async Task StartAsync(EventDelivery delivery, TimeProvider time, CancellationToken cancellationToken)
        {
            if (config.BulkSubscribe is { } bulk)
            {
                Batches = new BulkBatcher(bulk, time, (path, entries, token) => delivery.SendBatchAsync(this, path, entries, token));
                _subscription = await Broker.SubscribeAsync(Topic, AppId, MaxInFlight,
                    (message, token) => delivery.DeliverBulkEntryCountedAsync(this, message, token), cancellationToken).ConfigureAwait(false);
                return;
            }
            _subscription = await Broker.SubscribeAsync(Topic, AppId, MaxInFlight,
                (message, token) => delivery.DeliverCountedAsync(this, message, token), cancellationToken).ConfigureAwait(false);
        }

        public ValueTask DisposeAsync() => _subscription?.DisposeAsync() ?? ValueTask.CompletedTask;
    }
}
