namespace SharedRuntime.Components;

/// <summary>A component instance built from a Dapr <c>Component</c> resource.</summary>
public interface IComponent : IAsyncDisposable
{
    /// <summary>Connects, opens files, creates tables. Called once before the component serves.</summary>
    ValueTask InitAsync(CancellationToken cancellationToken);

    /// <summary>Features reported by the metadata API (for example ETAG, TRANSACTIONAL, TTL).</summary>
    IReadOnlyList<string> Capabilities { get; }
}
