namespace SharedRuntime.Components;

/// <summary>A component instance built from a Dapr <c>Component</c> resource.</summary>
public interface IComponent : IAsyncDisposable
{
    /// <summary>Connects, opens files, creates tables. Called once before the component serves.</summary>
    ValueTask InitAsync(CancellationToken cancellationToken);

    /// <summary>Features reported by the metadata API (for example ETAG, TRANSACTIONAL, TTL).</summary>
    IReadOnlyList<string> Capabilities { get; }
}

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

/// <summary>Builds components of the types it names (for example <c>state.in-memory</c>).</summary>
public interface IComponentFactory
{
    /// <summary>Component types this factory builds, as written in <c>spec.type</c>.</summary>
    IReadOnlyCollection<string> Types { get; }

    IComponent Create(ComponentContext context);
}

/// <summary>A component failed in a way the caller can report to the app.</summary>
public class ComponentException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The component's backend answered, and refused the request for what it carries (data it cannot store, a name of the
/// wrong kind). The backend is well: breakers never count it, and the caller gets a 4xx.
/// </summary>
public class ComponentRequestRejectedException(string message, Exception? inner = null) : ComponentException(message, inner);
