using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Admission;
using SharedRuntime.AppChannel;
using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// The configuration building block for one tenant: only the tenant's own items, by its app-id prefix. A get or a
/// subscription names at most the store's <c>maxKeysPerRequest</c> keys (400 ERR_TENANT_TOO_MANY_KEYS beyond; a get of
/// all items that finds more is refused the same way). An app keeps at most the store's <c>maxSubscriptionsPerApp</c>
/// subscriptions open on one store in this runtime (429 ERR_TENANT_CONFIGURATION_SUBSCRIPTIONS_EXCEEDED beyond).
/// Subscription ids are the app's own: another app can neither see nor end them. A subscription ends when the tenant no
/// longer sees that store instance (its scopes changed, the component was replaced or removed).
/// </summary>
internal sealed partial class ConfigurationApi
{
    private readonly Dictionary<(string AppId, string Id), ConfigurationSubscription> _open = [];
    private readonly Dictionary<(string AppId, IConfigurationStore Store), int> _perStore = [];
    private readonly AppChannels? _channels;
    private readonly ResiliencyPolicies? _policies;
    private readonly ILogger _logger;

    public ConfigurationApi(RuntimeConfiguration? configuration = null, AppChannels? channels = null, ResiliencyPolicies? policies = null, ILogger<ConfigurationApi>? logger = null)
    {
        _channels = channels;
        _policies = policies;
        _logger = logger ?? (ILogger)NullLogger.Instance;
        if (configuration is not null)
        {
            configuration.Changed += EndLostSubscriptions;
        }
    }

    /// <summary>Subscriptions open now, for tests and metadata.</summary>
    public int OpenFor(string appId)
    {
        lock (_open)
        {
            return _open.Keys.Count(k => k.AppId == appId);
        }
    }

    private static (ComponentRoute Route, IConfigurationStore Store) GetStore(TenantContext tenant, string storeName, string code)
    {
        var stores = tenant.Routes.ConfigurationStores;
        if (stores.IsEmpty)
        {
            throw new DaprApiException(500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", "configuration store is not configured");
        }
        var route = stores.Find(storeName)
            ?? throw new DaprApiException(400, "ERR_CONFIGURATION_STORE_NOT_FOUND", $"configuration store {storeName} not found");
        return route.Instance is IConfigurationStore store
            ? (route, store)
            : throw new DaprApiException(500, code, $"configuration store {storeName} is not available: {route.Component.Error}");
    }

    private static void CheckKeys(TenantContext tenant, IConfigurationStore store, IReadOnlyList<string> keys)
    {
        if (keys.Count > store.Limits.MaxKeysPerRequest)
        {
            throw new DaprApiException(400, "ERR_TENANT_TOO_MANY_KEYS", $"a configuration request names at most {store.Limits.MaxKeysPerRequest} keys (maxKeysPerRequest), not {keys.Count}");
        }
        foreach (var key in keys)
        {
            StateApi.StoredKey(tenant, key);
        }
    }

    public async ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var (route, store) = GetStore(tenant, storeName, "ERR_CONFIGURATION_GET");
        CheckKeys(tenant, store, keys);
        GuardOutcome<IReadOnlyDictionary<string, ConfigurationItem>> outcome;
        try
        {
            outcome = await route.RunGuardedAsync((store, appId: tenant.AppId, keys), static (s, token) => s.store.GetAsync(s.appId, s.keys, token), cancellationToken).ConfigureAwait(false);
        }
        catch (ConfigurationTooManyItemsException ex)
        {
            throw new DaprApiException(400, "ERR_TENANT_TOO_MANY_KEYS", $"configuration store {storeName}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is not OperationCanceledException and not DaprApiException)
        {
            throw new DaprApiException(ex is ComponentRequestRejectedException ? 400 : 500, "ERR_CONFIGURATION_GET",
                $"failed to get {string.Join(",", keys)} from configuration store {storeName}: {ex.Message}", ex);
        }
        if (outcome.IsRefused)
        {
            var reason = route.Describe(outcome.Refusal, outcome.RetryAfter);
            throw outcome.Refusal == GuardRefusal.LineFull
                ? new DaprApiException(429, "ERR_TENANT_BACKEND_BUSY", $"configuration store {storeName} is busy: {reason}") { RetryAfterSeconds = 1 }
                : new DaprApiException(500, "ERR_CONFIGURATION_GET", $"failed to get {string.Join(",", keys)} from configuration store {storeName}: {reason}");
        }
        return outcome.Value;
    }

    /// <summary>
    /// Opens a subscription to <paramref name="keys"/> (all of the tenant's items when empty); its reader takes the
    /// changes with <see cref="ConfigurationSubscription.NextAsync"/> and disposes it when done.
    /// </summary>
    public async ValueTask<ConfigurationSubscription> SubscribeAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var (_, store) = GetStore(tenant, storeName, "ERR_CONFIGURATION_SUBSCRIBE");
        CheckKeys(tenant, store, keys);
        var subscription = new ConfigurationSubscription(tenant.AppId, storeName, store, [.. keys], ForgetAsync);
        lock (_open)
        {
            var count = _perStore.GetValueOrDefault((tenant.AppId, store));
            if (count >= store.Limits.MaxSubscriptionsPerApp)
            {
                throw new DaprApiException(429, "ERR_TENANT_CONFIGURATION_SUBSCRIPTIONS_EXCEEDED",
                    $"app {tenant.AppId} already has {count} subscriptions open on configuration store {storeName}, its limit (maxSubscriptionsPerApp); unsubscribe one first")
                {
                    RetryAfterSeconds = 1,
                };
            }
            _perStore[(tenant.AppId, store)] = count + 1;
            _open[(tenant.AppId, subscription.Id)] = subscription;
        }
        try
        {
            await subscription.AttachAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await subscription.DisposeAsync().ConfigureAwait(false);
            if (ex is OperationCanceledException)
            {
                throw;
            }
            throw new DaprApiException(500, "ERR_CONFIGURATION_SUBSCRIBE", $"failed to subscribe {string.Join(",", keys)} from configuration store {storeName}: {ex.Message}", ex);
        }
        return subscription;
    }

    /// <summary>
    /// Opens a subscription whose changes the runtime posts to the app, as Dapr's HTTP API does: each changed key as
    /// <c>POST /configuration/&lt;store&gt;/&lt;key&gt;</c> with <c>{"id", "items"}</c>. Lives until unsubscribed. A tenant
    /// without an appEndpoint gets 400 ERR_APP_CHANNEL_NIL.
    /// </summary>
    public async ValueTask<string> SubscribeForAppAsync(TenantContext tenant, string storeName, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var (_, store) = GetStore(tenant, storeName, "ERR_CONFIGURATION_SUBSCRIBE");
        CheckKeys(tenant, store, keys);
        if (_channels?.Find(tenant.AppId) is null || _policies is null)
        {
            // Dapr answers 500; the app asked to be called without an appEndpoint to call, which is its own mistake.
            throw new DaprApiException(400, "ERR_APP_CHANNEL_NIL", "app channel is not initialized (the tenant has no appEndpoint). cannot subscribe to configuration updates");
        }
        var subscription = await SubscribeAsync(tenant, storeName, keys, cancellationToken).ConfigureAwait(false);
        _ = Task.Run(() => PostChangesAsync(subscription), CancellationToken.None);
        return subscription.Id;
    }

    private async Task PostChangesAsync(ConfigurationSubscription subscription)
    {
        await using (subscription.ConfigureAwait(false))
        {
            while (await subscription.NextAsync(CancellationToken.None).ConfigureAwait(false) is { } items)
            {
                var body = UpdateBody(subscription.Id, items);
                foreach (var key in items.Keys)
                {
                    var problem = await AppPost.SendAsync(_channels!, _policies!, subscription.AppId, subscription.StoreName,
                        $"configuration/{subscription.StoreName}", $"configuration/{Uri.EscapeDataString(subscription.StoreName)}/{Uri.EscapeDataString(key)}",
                        body, null, subscription.Ended).ConfigureAwait(false);
                    if (problem is not null && !subscription.Ended.IsCancellationRequested)
                    {
                        ChangeNotDelivered(_logger, subscription.AppId, subscription.StoreName, key, problem);
                    }
                }
            }
        }
    }

    /// <summary>Dapr's update event as JSON: <c>{"id": ..., "items": {key: {"value", "version", "metadata"}}}</c>, empty fields left out.</summary>
    internal static byte[] UpdateBody(string id, IReadOnlyDictionary<string, ConfigurationItem> items)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("id", id);
            writer.WriteStartObject("items");
            foreach (var (key, item) in items)
            {
                writer.WriteStartObject(key);
                if (item.Value.Length > 0)
                {
                    writer.WriteString("value", item.Value);
                }
                if (item.Version.Length > 0)
                {
                    writer.WriteString("version", item.Version);
                }
                if (item.Metadata.Count > 0)
                {
                    writer.WriteStartObject("metadata");
                    foreach (var (name, value) in item.Metadata)
                    {
                        writer.WriteString(name, value);
                    }
                    writer.WriteEndObject();
                }
                writer.WriteEndObject();
            }
            writer.WriteEndObject();
            writer.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Ends the app's subscription <paramref name="id"/> on <paramref name="storeName"/> (any store when null); false
    /// when the app has none by that id (another app's id is not found either).
    /// </summary>
    public bool Unsubscribe(string appId, string? storeName, string id)
    {
        ConfigurationSubscription? subscription;
        lock (_open)
        {
            if (!_open.TryGetValue((appId, id), out subscription) || (storeName is not null && subscription.StoreName != storeName))
            {
                return false;
            }
            Forget(subscription); // at once: the id is gone and the app's slot free, while its reader winds down
        }
        subscription.End();
        return true;
    }

    private ValueTask ForgetAsync(ConfigurationSubscription subscription)
    {
        lock (_open)
        {
            Forget(subscription);
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>Removes the subscription from the open ones (once); under the lock.</summary>
    private void Forget(ConfigurationSubscription subscription)
    {
        if (_open.Remove((subscription.AppId, subscription.Id)))
        {
            var key = (subscription.AppId, subscription.Store);
            if (_perStore.TryGetValue(key, out var count) && count > 1)
            {
                _perStore[key] = count - 1;
            }
            else
            {
                _perStore.Remove(key);
            }
        }
    }

    /// <summary>Ends the subscriptions whose tenant no longer sees the store instance they watch.</summary>
    private void EndLostSubscriptions(RuntimeSnapshot snapshot)
    {
        List<ConfigurationSubscription> lost = [];
        lock (_open)
        {
            foreach (var subscription in _open.Values)
            {
                if (!snapshot.Tenants.TryGetValue(subscription.AppId, out var tenant) ||
                    !ReferenceEquals(tenant.Routes.ConfigurationStores.Find(subscription.StoreName)?.Instance, subscription.Store))
                {
                    lost.Add(subscription);
                }
            }
        }
        foreach (var subscription in lost)
        {
            subscription.End();
        }
    }

    [LoggerMessage(2310, LogLevel.Warning, "Tenant {AppId}: the change of configuration item {Key} of {StoreName} was not delivered to the app: {Problem}")]
    private static partial void ChangeNotDelivered(ILogger logger, string appId, string storeName, string key, string problem);
}
