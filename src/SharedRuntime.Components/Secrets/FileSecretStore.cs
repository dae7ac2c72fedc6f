using System.Text.Json;

namespace SharedRuntime.Components.Secrets;

/// <summary>
/// <c>secretstores.local.file</c>: a JSON file (<c>secretsFile</c>, relative to the resource file). Nested objects are
/// flattened with <c>nestedSeparator</c> (default ":"); with <c>multiValued: true</c> each top-level key is one secret
/// holding its nested values. The file is read again when it changes. It must lie under the allowed file roots
/// (<see cref="FileRoots"/>), never in the runtime's state folder.
/// </summary>
internal sealed class FileSecretStore : ISecretStore
{
    private const long MaxFileBytes = 4 * 1024 * 1024;
    private readonly string _path;
    private readonly string _separator;
    private readonly bool _multiValued;
    private (DateTime Stamp, long Length, Dictionary<string, IReadOnlyDictionary<string, string>> Secrets)? _cache;

    public FileSecretStore(ComponentContext context)
    {
        var file = context.GetMetadata("secretsFile") ?? throw new ComponentException("metadata 'secretsFile' is required");
        _path = FileRoots.Of(context).Check(Path.IsPathRooted(file) || context.BaseDirectory is null ? file : Path.Combine(context.BaseDirectory, file), "secretsFile");
        _separator = context.GetMetadata("nestedSeparator") ?? ":";
        _multiValued = bool.TryParse(context.GetMetadata("multiValued"), out var multi) && multi;
    }

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken)
    {
        Load();
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyDictionary<string, string>?> GetSecretAsync(string name, IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Load().TryGetValue(name, out var secret) ? secret : null);

    public ValueTask<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>> GetBulkSecretAsync(IReadOnlyDictionary<string, string> metadata, CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>>(Load());

    private Dictionary<string, IReadOnlyDictionary<string, string>> Load()
    {
        var info = new FileInfo(_path);
        if (!info.Exists)
        {
            throw new ComponentException($"secrets file {_path} does not exist");
        }
        if (info.Length > MaxFileBytes)
        {
            throw new ComponentException($"secrets file {_path} is larger than {MaxFileBytes} bytes");
        }
        if (_cache is { } cache && cache.Stamp == info.LastWriteTimeUtc && cache.Length == info.Length)
        {
            return cache.Secrets;
        }
        using var json = JsonDocument.Parse(File.ReadAllBytes(_path));
        if (json.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new ComponentException($"secrets file {_path} must hold a JSON object");
        }
        var secrets = new Dictionary<string, IReadOnlyDictionary<string, string>>(StringComparer.Ordinal);
        if (_multiValued)
        {
            foreach (var property in json.RootElement.EnumerateObject())
            {
                var values = new Dictionary<string, string>(StringComparer.Ordinal);
                Flatten(property.Value, "", values);
                if (property.Value.ValueKind != JsonValueKind.Object)
                {
                    values = new Dictionary<string, string> { [property.Name] = Text(property.Value) };
                }
                secrets[property.Name] = values;
            }
        }
        else
        {
            var flat = new Dictionary<string, string>(StringComparer.Ordinal);
            Flatten(json.RootElement, "", flat);
            foreach (var (key, value) in flat)
            {
                secrets[key] = new Dictionary<string, string> { [key] = value };
            }
        }
        _cache = (info.LastWriteTimeUtc, info.Length, secrets);
        return secrets;
    }

    private void Flatten(JsonElement element, string prefix, Dictionary<string, string> into)
    {
        if (element.ValueKind == JsonValueKind.Object)
        {
            foreach (var property in element.EnumerateObject())
            {
                Flatten(property.Value, prefix.Length == 0 ? property.Name : prefix + _separator + property.Name, into);
            }
            return;
        }
        into[prefix] = Text(element);
    }

    private static string Text(JsonElement element) => element.ValueKind == JsonValueKind.String ? element.GetString()! : element.GetRawText();

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
