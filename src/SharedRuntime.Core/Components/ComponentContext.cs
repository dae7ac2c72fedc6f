namespace SharedRuntime.Components;

/// <summary>Everything a factory needs to build one component.</summary>
public sealed class ComponentContext
{
    public required string Name { get; init; }
    public required string Type { get; init; }
    public required string Version { get; init; }

    /// <summary>Resolved metadata (values, envRefs and secretKeyRefs already resolved).</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }

    /// <summary>Folder of the resource file, for resolving relative paths in metadata.</summary>
    public string? BaseDirectory { get; init; }

    public required IServiceProvider Services { get; init; }

    public string? GetMetadata(string name)
    {
        foreach (var (key, value) in Metadata)
        {
            if (string.Equals(key, name, StringComparison.OrdinalIgnoreCase))
            {
                return value;
            }
        }
        return null;
    }
}
