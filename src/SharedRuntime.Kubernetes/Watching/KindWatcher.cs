using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Kubernetes.Watching;

/// <summary>
/// Keeps an in-memory copy of every object of one kind: lists, then watches from the list's resourceVersion, applying
/// ADDED, MODIFIED and DELETED to the copy and remembering BOOKMARK versions. A watch that ends is resumed from the
/// last version seen; one refused with 410 Gone (too old) starts over with a list, so no change is missed. Failures
/// wait with capped, jittered exponential backoff. A kind whose resource type is not installed (404) counts as empty
/// and is listed again later.
/// </summary>
internal sealed class KindWatcher
{
    private readonly WatchedKind _kind;
    private readonly string _path;
    private readonly KubernetesApiClient _api;
    private readonly KubernetesSourceOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action _changed;
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _synced = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Dictionary<string, JsonElement> _objects = new(StringComparer.Ordinal);
    private JsonElement[]? _snapshot;
    private bool _reportedMissing;

    /// <param name="path">The collection to read, with a label selector if any; null for the kind's in the source's namespace.</param>
    public KindWatcher(WatchedKind kind, KubernetesApiClient api, KubernetesSourceOptions options, TimeProvider time, ILogger logger, Action changed, string? path = null)
    {
        _kind = kind;
        _path = path ?? kind.Path(options.Namespace);
        _api = api;
        _options = options;
        _time = time;
        _logger = logger;
        _changed = changed;
    }

    public WatchedKind Kind => _kind;

    /// <summary>Completes once the first list has been applied (an uninstalled kind counts as an empty list).</summary>
    public Task Synced => _synced.Task;

    /// <summary>The objects now; the same array until the next change, so a reload that another kind caused copies nothing here.</summary>
    public IReadOnlyList<JsonElement> Snapshot()
    {
        lock (_gate)
        {
            return _snapshot ??= [.. _objects.Values];
        }
    }

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var backoff = new ReconnectBackoff(_options.InitialBackoff, _options.MaxBackoff);
        while (!cancellationToken.IsCancellationRequested)
        {
            string resourceVersion;
            try
            {
                var list = await _api.ListAsync(_path, cancellationToken, forbiddenIsEmpty: _kind.ClusterScoped || _kind.Optional).ConfigureAwait(false);
                if (list.Missing)
                {
                    if (!_reportedMissing)
                    {
                        _reportedMissing = true;
                        KubernetesLog.KindNotInstalled(_logger, _kind.ToString(), list.Status, _options.MissingKindRetry.TotalSeconds);
                    }
                    Replace([]);
                    await Task.Delay(_options.MissingKindRetry, _time, cancellationToken).ConfigureAwait(false);
                    continue;
                }
                if (_reportedMissing)
                {
                    _reportedMissing = false;
                    KubernetesLog.KindInstalled(_logger, _kind.ToString());
                }
                Replace(list.Items);
                resourceVersion = list.ResourceVersion;
                backoff.Reset();
            }
            catch (Exception ex) when (IsTransient(ex, cancellationToken))
            {
                var wait = backoff.Next();
                KubernetesLog.ListFailed(_logger, _kind.ToString(), ex.Message, wait.TotalMilliseconds);
                await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            await WatchUntilGoneAsync(resourceVersion, backoff, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Watches from <paramref name="resourceVersion"/>, resuming after drops, until the version is gone.</summary>
    private async Task WatchUntilGoneAsync(string resourceVersion, ReconnectBackoff backoff, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await foreach (var change in _api.WatchAsync(_path, resourceVersion, _options.WatchTimeout, cancellationToken).ConfigureAwait(false))
                {
                    resourceVersion = Apply(change) ?? resourceVersion;
                    backoff.Reset();
                }
                // The server ended the watch (its timeout): resume from the last version seen.
            }
            catch (KubernetesApiException ex) when (ex.IsGone)
            {
                KubernetesLog.WatchGone(_logger, _kind.ToString(), resourceVersion);
                return;
            }
            catch (Exception ex) when (IsTransient(ex, cancellationToken))
            {
                var wait = backoff.Next();
                KubernetesLog.WatchDropped(_logger, _kind.ToString(), ex.Message, wait.TotalMilliseconds);
                await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Applies one event; returns the resourceVersion to resume from, or null to keep the current one.</summary>
    private string? Apply(WatchEvent change)
    {
        switch (change.Type)
        {
            case "ADDED":
            case "MODIFIED":
                lock (_gate)
                {
                    _objects[KeyOf(change.Object)] = change.Object;
                    _snapshot = null;
                }
                _changed();
                return VersionOf(change.Object);
            case "DELETED":
                bool removed;
                lock (_gate)
                {
                    removed = _objects.Remove(KeyOf(change.Object));
                    _snapshot = null;
                }
                if (removed)
                {
                    _changed();
                }
                return VersionOf(change.Object);
            case "BOOKMARK":
                return VersionOf(change.Object);
            case "ERROR":
                var code = change.Object.ValueKind == JsonValueKind.Object && change.Object.TryGetProperty("code", out var c) && c.TryGetInt32(out var n) ? n : 500;
                var message = change.Object.ValueKind == JsonValueKind.Object && change.Object.TryGetProperty("message", out var m) ? m.GetString() ?? "" : "";
                throw new KubernetesApiException(code, $"watch {_path}: error event {code}: {message}");
            default:
                return null;
        }
    }

    private void Replace(IReadOnlyList<JsonElement> items)
    {
        var next = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            next[KeyOf(item)] = item;
        }
        bool changed;
        lock (_gate)
        {
            changed = !SameObjects(_objects, next);
            _objects = next;
            _snapshot = null;
        }
        var first = _synced.TrySetResult();
        if (changed || first)
        {
            _changed();
        }
    }

    private static bool SameObjects(Dictionary<string, JsonElement> before, Dictionary<string, JsonElement> after) =>
        before.Count == after.Count &&
        before.All(kv => after.TryGetValue(kv.Key, out var other) && VersionOf(other) == VersionOf(kv.Value) && VersionOf(other) is not null);

    private static string KeyOf(JsonElement obj)
    {
        var metadata = obj.TryGetProperty("metadata", out var m) ? m : default;
        var ns = metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty("namespace", out var n) ? n.GetString() : "";
        var name = metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty("name", out var x) ? x.GetString() : "";
        return $"{ns}/{name}";
    }

    private static string? VersionOf(JsonElement obj) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object &&
        m.TryGetProperty("resourceVersion", out var v) ? v.GetString() : null;

    private static bool IsTransient(Exception ex, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested &&
        ex is HttpRequestException or IOException or KubernetesApiException or JsonException or OperationCanceledException or InvalidOperationException;
}
