using System.Text;
using System.Text.Json;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>The data of the Secrets read from the API, by namespace and name, decoded.</summary>
internal sealed class SecretIndex
{
    private readonly Dictionary<(string Namespace, string Name), JsonElement> _secrets = [];

    public SecretIndex(IEnumerable<JsonElement> secrets)
    {
        foreach (var secret in secrets)
        {
            if (secret.TryGetProperty("metadata", out var metadata) &&
                metadata.TryGetProperty("name", out var name) && name.GetString() is { } n)
            {
                var ns = metadata.TryGetProperty("namespace", out var nsValue) ? nsValue.GetString() ?? "" : "";
                _secrets[(ns, n)] = secret;
            }
        }
    }

    /// <summary>The value of <paramref name="key"/> in Secret <paramref name="name"/> of <paramref name="namespace"/>, or null.</summary>
    public string? Find(string @namespace, string name, string key)
    {
        if (!_secrets.TryGetValue((@namespace, name), out var secret))
        {
            return null;
        }
        if (secret.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object &&
            data.TryGetProperty(key, out var encoded) && encoded.GetString() is { } base64)
        {
            try
            {
                return Encoding.UTF8.GetString(Convert.FromBase64String(base64));
            }
            catch (FormatException)
            {
                return null;
            }
        }
        // The API server never returns stringData, but manifests applied to a fake server may carry it.
        return secret.TryGetProperty("stringData", out var plain) && plain.ValueKind == JsonValueKind.Object &&
               plain.TryGetProperty(key, out var text) ? text.GetString() : null;
    }
}
