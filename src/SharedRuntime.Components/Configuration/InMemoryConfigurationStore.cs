namespace SharedRuntime.Components.Configuration;

/// <summary>
/// <c>configuration.in-memory</c>: items from the component's own metadata. An entry named <c>appid||key</c> is
/// item <c>key</c> of app <c>appid</c>; apps never see each other's items. Its items change only with its resource,
/// which makes a new store: subscriptions receive nothing and end when this store is disposed.
/// </summary>
internal sealed class InMemoryConfigurationStore(ComponentContext context) : IConfigurationStore
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    private readonly Dictionary<string, ConfigurationItem> _items = context.Metadata
        .Where(m => m.Key.Contains(StateKeys.Separator, StringComparison.Ordinal))
        .ToDictionary(m => m.Key, m => new ConfigurationItem(m.Value, "1", NoMetadata), StringComparer.Ordinal);

    private readonly HashSet<IConfigurationWatcher> _watchers = [];

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ConfigurationStoreLimits Limits { get; } = ConfigurationStoreLimits.From(context);

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var start = prefix + StateKeys.Separator;
        var result = new Dictionary<string, ConfigurationItem>(StringComparer.Ordinal);
        if (keys.Count == 0)
        {
            foreach (var (key, item) in _items.Where(i => i.Key.StartsWith(start, StringComparison.Ordinal)))
            {
                if (result.Count >= Limits.MaxKeysPerRequest)
                {
                    throw new ConfigurationTooManyItemsException(prefix, Limits.MaxKeysPerRequest);
                }
                result[key[start.Length..]] = item;
            }
        }
        foreach (var key in keys)
        {
            if (_items.TryGetValue(start + key, out var item))
            {
                result[key] = item;
            }
        }
        return ValueTask.FromResult<IReadOnlyDictionary<string, ConfigurationItem>>(result);
    }

    public ValueTask<IAsyncDisposable> SubscribeAsync(string prefix, IReadOnlyList<string> keys, IConfigurationWatcher watcher, CancellationToken cancellationToken)
    {
        lock (_watchers)
        {
            _watchers.Add(watcher);
        }
        return ValueTask.FromResult<IAsyncDisposable>(new Watch(this, watcher));
    }

    public ValueTask DisposeAsync()
    {
        IConfigurationWatcher[] watchers;
        lock (_watchers)
        {
            watchers = [.. _watchers];
            _watchers.Clear();
        }
        foreach (var watcher in watchers)
        {
            watcher.Closed();
        }
        return ValueTask.CompletedTask;
    }

    private sealed class Watch(InMemoryConfigurationStore store, IConfigurationWatcher watcher) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            lock (store._watchers)
            {
                store._watchers.Remove(watcher);
            }
            return ValueTask.CompletedTask;
        }
    }
}
