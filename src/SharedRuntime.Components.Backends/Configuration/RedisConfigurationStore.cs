using System.Collections.Frozen;
using Microsoft.Extensions.Logging;
using SharedRuntime.Components.State;
using StackExchange.Redis;

namespace SharedRuntime.Components.Configuration;

/// <summary>
/// <c>configuration.redis</c>, reading items as Dapr's Redis configuration store writes them: string keys whose value is
/// <c>value||version</c>. App <c>a</c>'s item <c>k</c> is the key <c>a||k</c>, so apps never read each other's items.
/// A get of named keys is one MGET; a get of all an app's items is a SCAN of <c>a||*</c> (its cost grows with the
/// database, so keep configuration in its own <c>redisDB</c>), refused past <see cref="ConfigurationStoreLimits.MaxKeysPerRequest"/>
/// items. Subscriptions use keyspace notifications like Dapr's: one pattern subscription per app with open subscriptions
/// (<c>__keyspace@db__:a||*</c>), each notification read once (a GET) and handed to that app's subscribers of the key; a
/// deleted, expired or emptied item is sent as an empty item. The first subscription turns on the notifications the
/// store needs (<c>notify-keyspace-events</c> with <c>Kg$xe</c> added to what is set), as Dapr does; where CONFIG is not
/// allowed the server must have them on already. Changes made while the connection is down are not replayed.
/// </summary>
internal sealed partial class RedisConfigurationStore(RedisStateOptions options, ConfigurationStoreLimits limits, ILogger<RedisConfigurationStore> logger) : IConfigurationStore
{
    private const string NeededEvents = "Kg$xe";

    private readonly SemaphoreSlim _changing = new(1, 1);
    private readonly Dictionary<string, PrefixWatch> _prefixes = new(StringComparer.Ordinal);
    private readonly string _channelPrefix = $"__keyspace@{options.Configuration.DefaultDatabase ?? 0}__:";
    private ConnectionMultiplexer? _connection;
    private bool _eventsChecked;
    private bool _disposed;

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ConfigurationStoreLimits Limits { get; } = limits;

    private ConnectionMultiplexer Connection => _connection ?? throw new ComponentException("redis configuration store is not initialised");

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        var configuration = options.Configuration.Clone();
        configuration.AllowAdmin = true; // CONFIG GET/SET notify-keyspace-events, as Dapr's store does
        _connection = await RedisConnection.OpenAsync(configuration, options.Endpoint, logger, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var start = prefix + StateKeys.Separator;
        try
        {
            List<string> names;
            if (keys.Count > 0)
            {
                names = [.. keys.Distinct(StringComparer.Ordinal)];
            }
            else
            {
                names = [];
                var server = Connection.GetServers()[0];
                await foreach (var key in server.KeysAsync(Connection.GetDatabase().Database, RedisStateStore.EscapeGlob(start) + "*", pageSize: 1000)
                    .WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    if (names.Count >= Limits.MaxKeysPerRequest)
                    {
                        throw new ConfigurationTooManyItemsException(prefix, Limits.MaxKeysPerRequest);
                    }
                    names.Add(((string)key!)[start.Length..]);
                }
            }
            var result = new Dictionary<string, ConfigurationItem>(StringComparer.Ordinal);
            if (names.Count == 0)
            {
                return result;
            }
            var values = await Connection.GetDatabase().StringGetAsync([.. names.Select(n => (RedisKey)(start + n))]).WaitAsync(cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < names.Count; i++)
            {
                if (!values[i].IsNullOrEmpty && ConfigurationItem.Parse(values[i]!) is { Value.Length: > 0 } item)
                {
                    result[names[i]] = item;
                }
            }
            return result;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis get failed: {ex.Message}", ex);
        }
    }

    public async ValueTask<IAsyncDisposable> SubscribeAsync(string prefix, IReadOnlyList<string> keys, IConfigurationWatcher watcher, CancellationToken cancellationToken)
    {
        var subscriber = new Subscriber(watcher, keys.Count == 0 ? null : keys.ToFrozenSet(StringComparer.Ordinal));
        await _changing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_prefixes.TryGetValue(prefix, out var watch))
            {
                await EnsureKeyspaceEventsAsync().ConfigureAwait(false);
                var pattern = RedisChannel.Pattern(_channelPrefix + RedisStateStore.EscapeGlob(prefix + StateKeys.Separator) + "*");
                ChannelMessageQueue queue;
                try
                {
                    queue = await Connection.GetSubscriber().SubscribeAsync(pattern).WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is RedisException or TimeoutException)
                {
                    throw new ComponentException($"redis subscribe failed: {ex.Message}", ex);
                }
                watch = new PrefixWatch(prefix, queue);
                _prefixes[prefix] = watch;
                queue.OnMessage(message => OnNotificationAsync(watch, message));
            }
            watch.Add(subscriber);
        }
        finally
        {
            _changing.Release();
        }
        return new Handle(this, prefix, subscriber);
    }

    /// <summary>Adds the keyspace events the store needs to what the server has, once; logs when CONFIG is not allowed.</summary>
    private async Task EnsureKeyspaceEventsAsync()
    {
        if (_eventsChecked)
        {
            return;
        }
        _eventsChecked = true;
        try
        {
            var server = Connection.GetServers()[0];
            var current = (await server.ConfigGetAsync("notify-keyspace-events").ConfigureAwait(false)).FirstOrDefault().Value ?? "";
            var covered = current.Contains('A', StringComparison.Ordinal) ? current + "g$lshzxetd" : current;
            var missing = new string([.. NeededEvents.Where(c => !covered.Contains(c, StringComparison.Ordinal))]);
            if (missing.Length > 0)
            {
                await server.ConfigSetAsync("notify-keyspace-events", current + missing).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            KeyspaceEventsNotSet(logger, options.Endpoint, NeededEvents, ex.Message);
        }
    }

    private async Task OnNotificationAsync(PrefixWatch watch, ChannelMessage message)
    {
        var channel = (string?)message.Channel ?? "";
        var start = _channelPrefix.Length + watch.Prefix.Length + StateKeys.Separator.Length;
        if (channel.Length <= start)
        {
            return;
        }
        var key = channel[start..];
        ConfigurationItem item;
        if ((string?)message.Message is "del" or "expired" or "evicted")
        {
            item = ConfigurationItem.Deleted;
        }
        else
        {
            try
            {
                var value = await Connection.GetDatabase().StringGetAsync(channel[_channelPrefix.Length..]).ConfigureAwait(false);
                item = value.IsNullOrEmpty ? ConfigurationItem.Deleted : ConfigurationItem.Parse(value!);
                if (item.Value.Length == 0)
                {
                    item = ConfigurationItem.Deleted;
                }
            }
            catch (RedisServerException ex) when (ex.Message.Contains("WRONGTYPE", StringComparison.Ordinal))
            {
                return; // not a configuration item (a hash or stream under the same prefix)
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or ComponentException)
            {
                ChangeNotRead(logger, watch.Prefix, key, ex.Message); // also a store being disposed meanwhile
                return;
            }
        }
        var changed = new Dictionary<string, ConfigurationItem>(1, StringComparer.Ordinal) { [key] = item };
        foreach (var subscriber in watch.Subscribers)
        {
            if (subscriber.Keys is null || subscriber.Keys.Contains(key))
            {
                subscriber.Watcher.Changed(changed);
            }
        }
    }

    private async ValueTask RemoveAsync(string prefix, Subscriber subscriber)
    {
        await _changing.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_prefixes.TryGetValue(prefix, out var watch) && watch.Remove(subscriber) == 0)
            {
                _prefixes.Remove(prefix);
                await UnsubscribeQuietlyAsync(watch).ConfigureAwait(false);
            }
        }
        finally
        {
            _changing.Release();
        }
    }

    private async Task UnsubscribeQuietlyAsync(PrefixWatch watch)
    {
        try
        {
            await watch.Queue.UnsubscribeAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            ChangeNotRead(logger, watch.Prefix, "*", ex.Message);
        }
    }

    /// <summary>App prefixes with an open pattern subscription (for tests).</summary>
    internal async Task<int> CountWatchedPrefixesAsync()
    {
        await _changing.WaitAsync().ConfigureAwait(false);
        try
        {
            return _prefixes.Count;
        }
        finally
        {
            _changing.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<PrefixWatch> watches;
        await _changing.WaitAsync().ConfigureAwait(false);
        try
        {
            _disposed = true;
            watches = [.. _prefixes.Values];
            _prefixes.Clear();
        }
        finally
        {
            _changing.Release();
        }
        foreach (var watch in watches)
        {
            await UnsubscribeQuietlyAsync(watch).ConfigureAwait(false);
            foreach (var subscriber in watch.Subscribers)
            {
                subscriber.Watcher.Closed();
            }
        }
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }

    private sealed record Subscriber(IConfigurationWatcher Watcher, FrozenSet<string>? Keys);

    /// <summary>One app's pattern subscription and its subscribers (an array replaced on change, read without a lock).</summary>
    private sealed class PrefixWatch(string prefix, ChannelMessageQueue queue)
    {
        private volatile Subscriber[] _subscribers = [];

        public string Prefix { get; } = prefix;

        public ChannelMessageQueue Queue { get; } = queue;

        public Subscriber[] Subscribers => _subscribers;

        public void Add(Subscriber subscriber) => _subscribers = [.. _subscribers, subscriber];

        public int Remove(Subscriber subscriber)
        {
            _subscribers = [.. _subscribers.Where(s => !ReferenceEquals(s, subscriber))];
            return _subscribers.Length;
        }
    }

    private sealed class Handle(RedisConfigurationStore store, string prefix, Subscriber subscriber) : IAsyncDisposable
    {
        private int _disposed;

        public ValueTask DisposeAsync() =>
            Interlocked.Exchange(ref _disposed, 1) == 0 ? store.RemoveAsync(prefix, subscriber) : ValueTask.CompletedTask;
    }

    [LoggerMessage(3040, LogLevel.Warning, "Redis at {Endpoint}: keyspace notifications could not be turned on ({Problem}); configuration subscriptions need notify-keyspace-events with {Events} set on the server")]
    private static partial void KeyspaceEventsNotSet(ILogger logger, string endpoint, string events, string problem);

    [LoggerMessage(3041, LogLevel.Warning, "Redis configuration of app {AppId}: a change of {Key} could not be read ({Problem})")]
    private static partial void ChangeNotRead(ILogger logger, string appId, string key, string problem);
}
