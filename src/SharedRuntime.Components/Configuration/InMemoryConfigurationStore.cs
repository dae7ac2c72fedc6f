namespace SharedRuntime.Components.Configuration;

/// <summary>
/// <c>configuration.in-memory</c>: items from the component's own metadata. An entry named <c>appid||key</c> is
/// item <c>key</c> of app <c>appid</c>; apps never see each other's items.
/// </summary>
internal sealed class InMemoryConfigurationStore(ComponentContext context) : IConfigurationStore
{
    private static readonly IReadOnlyDictionary<string, string> NoMetadata = new Dictionary<string, string>();

    private readonly Dictionary<string, ConfigurationItem> _items = context.Metadata
        .Where(m => m.Key.Contains(StateKeys.Separator, StringComparison.Ordinal))
        .ToDictionary(m => m.Key, m => new ConfigurationItem(m.Value, "1", NoMetadata), StringComparer.Ordinal);

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken)
    {
        var start = prefix + StateKeys.Separator;
        var result = new Dictionary<string, ConfigurationItem>(StringComparer.Ordinal);
        if (keys.Count == 0)
        {
            foreach (var (key, item) in _items.Where(i => i.Key.StartsWith(start, StringComparison.Ordinal)))
            {
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

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
