namespace SharedRuntime.Configuration;

/// <summary>
/// Where resources come from: folders (standalone) or the Kubernetes API. A source loads a complete
/// <see cref="ResourceSet"/> and says when it may have changed; one pipeline applies both kinds.
/// </summary>
public interface IResourceSource : IAsyncDisposable
{
    /// <summary>A short description for logs ("folder /etc/resources", "kubernetes").</summary>
    string Description { get; }

    /// <summary>Loads everything now. Throws <see cref="ResourceException"/> when a resource is bad.</summary>
    ValueTask<ResourceSet> LoadAsync(CancellationToken cancellationToken);

    /// <summary>Starts watching; <paramref name="changed"/> is called (never concurrently) after something may have changed.</summary>
    void Watch(Func<CancellationToken, Task> changed);
}
