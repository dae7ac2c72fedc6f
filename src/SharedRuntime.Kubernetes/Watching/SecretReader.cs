using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Kubernetes.Resources;

namespace SharedRuntime.Kubernetes.Watching;

/// <summary>
/// Reads the Secrets that resources name, one GET by name each in the resource's own namespace, and nothing else: no
/// Secret is listed or watched, so Secrets no resource names are never fetched, whatever their number or size. Each
/// answer is bounded (<see cref="KubernetesSourceOptions.MaxSecretBytes"/>), so is the number of Secrets
/// (<see cref="KubernetesSourceOptions.MaxSecrets"/>), and only the keys named are kept. A Secret newly named is read
/// when the resources are loaded; every <see cref="KubernetesSourceOptions.SecretRefreshInterval"/> the named ones are
/// read again, and a change (rotated, created, deleted) asks for a reload.
/// </summary>
internal sealed class SecretReader(KubernetesApiClient api, KubernetesSourceOptions options, TimeProvider time, ILogger logger, Action changed)
{
    private const int Parallelism = 8;

    /// <summary>One Secret as last read: its version and the values of the keys asked for (none when it does not exist).</summary>
    private sealed record Fetched(bool Exists, string? ResourceVersion, IReadOnlySet<string> Asked, IReadOnlyDictionary<string, string> Values)
    {
        public bool Covers(IReadOnlySet<string> keys) => !Exists || keys.IsSubsetOf(Asked);

        public bool SameAs(Fetched other) => Exists == other.Exists && ResourceVersion == other.ResourceVersion;
    }

    private readonly Lock _gate = new();
    private Dictionary<SecretName, IReadOnlySet<string>> _wanted = [];
    private Dictionary<SecretName, Fetched> _fetched = [];
    private bool _reportedTooMany;

    /// <summary>Reads what <paramref name="references"/> name and was not read yet; the index holds every named key there is.</summary>
    public async Task<SecretIndex> ReadAsync(IEnumerable<SecretReference> references, CancellationToken cancellationToken)
    {
        var wanted = new Dictionary<SecretName, HashSet<string>>();
        foreach (var reference in references)
        {
            var name = new SecretName(reference.Namespace, reference.Name);
            if (!wanted.TryGetValue(name, out var keys))
            {
                if (wanted.Count >= options.MaxSecrets)
                {
                    if (!_reportedTooMany)
                    {
                        _reportedTooMany = true;
                        KubernetesLog.TooManySecrets(logger, options.MaxSecrets, name.ToString());
                    }
                    continue;
                }
                wanted[name] = keys = new HashSet<string>(StringComparer.Ordinal);
            }
            keys.Add(reference.Key);
        }
        List<(SecretName, IReadOnlySet<string>)> missing;
        lock (_gate)
        {
            _wanted = wanted.ToDictionary(kv => kv.Key, kv => (IReadOnlySet<string>)kv.Value);
            _fetched = _fetched.Where(kv => wanted.ContainsKey(kv.Key)).ToDictionary();
            missing = [.. _wanted.Where(kv => !_fetched.TryGetValue(kv.Key, out var f) || !f.Covers(kv.Value)).Select(kv => (kv.Key, kv.Value))];
        }
        await FetchAsync(missing, cancellationToken).ConfigureAwait(false);
        lock (_gate)
        {
            return new SecretIndex(_fetched.Where(kv => kv.Value.Exists).ToDictionary(kv => kv.Key, kv => kv.Value.Values));
        }
    }

    /// <summary>Reads the named Secrets again every refresh interval; a change asks for a reload.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(options.SecretRefreshInterval, time, cancellationToken).ConfigureAwait(false);
                List<(SecretName, IReadOnlySet<string>)> all;
                Dictionary<SecretName, Fetched> before;
                lock (_gate)
                {
                    all = [.. _wanted.Select(kv => (kv.Key, kv.Value))];
                    before = new Dictionary<SecretName, Fetched>(_fetched);
                }
                if (all.Count == 0)
                {
                    continue;
                }
                await FetchAsync(all, cancellationToken).ConfigureAwait(false);
                bool different;
                lock (_gate)
                {
                    different = _fetched.Count != before.Count ||
                                _fetched.Any(kv => !before.TryGetValue(kv.Key, out var old) || !old.SameAs(kv.Value));
                }
                if (different)
                {
                    changed();
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The refresh must outlive any one failure; the last readings stay and the next round tries again.
                KubernetesLog.SecretReadFailed(logger, "(refresh)", ex.Message);
            }
        }
    }

    private Task FetchAsync(List<(SecretName Name, IReadOnlySet<string> Keys)> secrets, CancellationToken cancellationToken) =>
        Parallel.ForEachAsync(secrets, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
            async (secret, token) =>
            {
                if (await FetchOneAsync(secret.Name, secret.Keys, token).ConfigureAwait(false) is { } fetched)
                {
                    lock (_gate)
                    {
                        if (_wanted.ContainsKey(secret.Name))
                        {
                            _fetched[secret.Name] = fetched;
                        }
                    }
                }
            });

    /// <summary>One Secret by name; null when it could not be read this time (the last reading, if any, stays).</summary>
    private async Task<Fetched?> FetchOneAsync(SecretName name, IReadOnlySet<string> keys, CancellationToken cancellationToken)
    {
        var path = $"{WatchedKind.Secrets.Path(name.Namespace)}/{Uri.EscapeDataString(name.Name)}";
        try
        {
            using var document = await api.GetAsync(path, options.MaxSecretBytes, cancellationToken).ConfigureAwait(false);
            if (document is null)
            {
                return new Fetched(false, null, keys, new Dictionary<string, string>());
            }
            var root = document.RootElement;
            var version = root.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object &&
                          m.TryGetProperty("resourceVersion", out var v) ? v.GetString() : null;
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var key in keys)
            {
                if (Decode(root, key) is { } value)
                {
                    values[key] = value;
                }
            }
            return new Fetched(true, version, keys, values);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested &&
                                   ex is HttpRequestException or IOException or KubernetesApiException or JsonException or OperationCanceledException)
        {
            KubernetesLog.SecretReadFailed(logger, name.ToString(), ex.Message);
            return null;
        }
    }

    private static string? Decode(JsonElement secret, string key)
    {
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
               plain.TryGetProperty(key, out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : null;
    }
}
