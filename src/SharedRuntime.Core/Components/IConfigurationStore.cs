namespace SharedRuntime.Components;

/// <summary>One configuration value with its version and metadata.</summary>
public sealed record ConfigurationItem(string Value, string Version, IReadOnlyDictionary<string, string> Metadata);

/// <summary>
/// A configuration store. Keys arrive already prefixed with the tenant (<c>appid||key</c>), like state keys.
/// </summary>
internal interface IConfigurationStore : IComponent
{
    /// <summary>The items for <paramref name="keys"/> that exist; all of <paramref name="prefix"/>'s items when keys is empty.</summary>
    ValueTask<IReadOnlyDictionary<string, ConfigurationItem>> GetAsync(string prefix, IReadOnlyList<string> keys, CancellationToken cancellationToken);
}
