namespace SharedRuntime.Components;

internal interface ISecretStore : IComponent
{
    /// <summary>The secret's values (one or several keys), or null when it does not exist.</summary>
    ValueTask<IReadOnlyDictionary<string, string>?> GetSecretAsync(string name, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken);

    /// <summary>Every secret: name to its values.</summary>
    ValueTask<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> GetBulkSecretAsync(IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken);
}
