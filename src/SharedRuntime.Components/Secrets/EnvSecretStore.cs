using System.Collections;

namespace SharedRuntime.Components.Secrets;

/// <summary>
/// <c>secretstores.local.env</c>: the runtime's environment variables. With metadata <c>prefix</c>, only variables
/// starting with it are visible, and their names are given without it.
/// </summary>
internal sealed class EnvSecretStore(ComponentContext context) : ISecretStore
{
    private readonly string _prefix = context.GetMetadata("prefix") ?? "";

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask<IReadOnlyDictionary<string, string>?> GetSecretAsync(string name, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var value = Environment.GetEnvironmentVariable(_prefix + name);
        return ValueTask.FromResult<IReadOnlyDictionary<string, string>?>(value is null ? null : new Dictionary<string, string> { [name] = value });
    }

    public ValueTask<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> GetBulkSecretAsync(IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            var key = (string)entry.Key;
            if (key.StartsWith(_prefix, StringComparison.Ordinal) && key.Length > _prefix.Length)
            {
                var name = key[_prefix.Length..];
                result[name] = new Dictionary<string, string> { [name] = (string?)entry.Value ?? "" };
            }
        }
        return ValueTask.FromResult<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>>(result);
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
