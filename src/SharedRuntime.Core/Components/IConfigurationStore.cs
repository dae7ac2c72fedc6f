using System.Globalization;

namespace SharedRuntime.Components;

/// <summary>One configuration value with its version and metadata.</summary>
public sealed record ConfigurationItem(string Value, string Version, IReadOnlyDictionary<string, string> Metadata)
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    /// <summary>What a subscriber is told about an item that was deleted or emptied (Dapr sends an empty item).</summary>
    public static ConfigurationItem Deleted { get; } = new("", "", NoMetadata);

    /// <summary>
    /// A stored value as Dapr's Redis store writes it, <c>value||version</c>: the text before the first <c>||</c> is the
    /// value, the text after it (up to a further <c>||</c>) the version; without <c>||</c> the version is empty.
    /// </summary>
    public static ConfigurationItem Parse(string stored)
    {
        var at = stored.IndexOf(StateKeys.Separator, StringComparison.Ordinal);
        if (at < 0)
        {
            return new ConfigurationItem(stored, "", NoMetadata);
        }
        var rest = stored.AsSpan(at + StateKeys.Separator.Length);
        var end = rest.IndexOf(StateKeys.Separator, StringComparison.Ordinal);
        return new ConfigurationItem(stored[..at], (end < 0 ? rest : rest[..end]).ToString(), NoMetadata);
    }
}

/// <summary>
/// The bounds of one configuration store, from its metadata: <c>maxKeysPerRequest</c> (default
/// <see cref="DefaultMaxKeysPerRequest"/>), the most keys one get or subscribe names and the most items one answer or
/// one pending update holds; <c>maxSubscriptionsPerApp</c> (default <see cref="DefaultMaxSubscriptionsPerApp"/>), the
/// subscriptions one app keeps open on the store in this runtime.
/// </summary>
internal sealed record ConfigurationStoreLimits(int MaxKeysPerRequest, int MaxSubscriptionsPerApp)
{
    public const int DefaultMaxKeysPerRequest = 1000;
    public const int DefaultMaxSubscriptionsPerApp = 32;

    public static ConfigurationStoreLimits Default { get; } = new(DefaultMaxKeysPerRequest, DefaultMaxSubscriptionsPerApp);

    public static ConfigurationStoreLimits From(ComponentContext context) =>
        new(Positive(context, "maxKeysPerRequest", DefaultMaxKeysPerRequest), Positive(context, "maxSubscriptionsPerApp", DefaultMaxSubscriptionsPerApp));

    private static int Positive(ComponentContext context, string name, int fallback)
    {
        var text = context.GetMetadata(name);
        if (string.IsNullOrEmpty(text))
        {
            return fallback;
        }
        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new ComponentException($"metadata '{name}' must be a positive whole number, not '{text}'");
    }
}

/// <summary>
/// Receives a subscription's changes. Called by the store on its own notification path: it must not block (it queues
/// what it is given and returns).
/// </summary>
internal interface IConfigurationWatcher
{
    /// <summary>Items of the subscribed prefix that changed, by key without the prefix; <see cref="ConfigurationItem.Deleted"/> for a deleted one.</summary>
    void Changed(IReadOnlyDictionary<string, ConfigurationItem> items);

    /// <summary>The store stops watching (it is being disposed): nothing more will come.</summary>
    void Closed();
}

/// <summary>
/// A configuration store. Keys arrive already prefixed with the tenant (<c>appid||key</c>), like state keys.
/// </summary>
internal interface IConfigurationStore : IComponent
{
    ConfigurationStoreLimits Limits { get; }

    /// <summary>
    /// The items for <paramref name="keys"/> that exist; all of <paramref name="prefix"/>'s items when keys is empty. More
    /// than <see cref="ConfigurationStoreLimits.MaxKeysPerRequest"/> items throws <see cref="ConfigurationTooManyItemsException"/>.
    /// </summary>
    ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken);

    /// <summary>
    /// Tells <paramref name="watcher"/> about every later change of <paramref name="prefix"/>'s <paramref name="keys"/>
    /// (all of its keys when empty) until the returned handle is disposed.
    /// </summary>
    ValueTask<IAsyncDisposable> SubscribeAsync(string prefix, IReadOnlyList<string> keys, IConfigurationWatcher watcher, CancellationToken cancellationToken);
}

/// <summary>An app's get of all its items found more than the store answers at once; it has to name the keys it wants.</summary>
internal sealed class ConfigurationTooManyItemsException(string prefix, int limit)
    : ComponentRequestRejectedException($"app {prefix} has more than {limit} configuration items, the most one request answers (maxKeysPerRequest); name the keys to get")
{
    public int Limit { get; } = limit;
}
