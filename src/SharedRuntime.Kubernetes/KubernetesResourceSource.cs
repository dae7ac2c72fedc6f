using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Kubernetes.Identity;
using SharedRuntime.Kubernetes.Replicas;
using SharedRuntime.Kubernetes.Resources;
using SharedRuntime.Kubernetes.Watching;

namespace SharedRuntime.Kubernetes;

/// <summary>
/// Resources from the Kubernetes API: Tenants (sharedruntime.io/v1alpha1), Dapr Components, Subscriptions,
/// Resiliencies and Configurations. Each kind is listed (in pages) and then watched into an in-memory copy; every change
/// asks for a reload after a short quiet time, and a load builds the set from the copies. Secrets are not listed: the
/// ones the resources name are read by name in their own namespace (<see cref="SecretReader"/>). The first load waits until every kind has been listed once, so the runtime reports ready only
/// with the cluster's full configuration. With a cluster Service set, the EndpointSlices of that Service are watched
/// as well, and a change in the number of its ready replicas reloads too: the set carries the number, and Tenants
/// with cluster-wide limits are rebuilt with their new share. Nothing of this is on the request path, except the
/// TokenReviews of projected ServiceAccount tokens, which the source's API client makes for <see cref="SharedRuntime.Tenancy.ProjectedTokens"/>.
/// </summary>
internal sealed class KubernetesResourceSource : IResourceSource
{
    private readonly KubernetesSourceOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly k8s.Kubernetes _client;
    private readonly IReadOnlyList<KindWatcher> _watchers;
    private readonly SecretReader _secrets;
    private readonly KindWatcher? _replicaSlices;
    private readonly KindWatcher? _nodePods;
    private readonly IReadOnlyList<KindWatcher> _all;
    private readonly ResourceSetBuilder _builder;
    private readonly TenantEventRecorder _events;
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private readonly Lock _startGate = new();
    private Task[] _running = [];
    private Task? _reloadLoop;
    private int _replicas;

    public KubernetesResourceSource(KubernetesSourceOptions options, TimeProvider time, ILogger<KubernetesResourceSource> logger)
    {
        _options = options;
        _time = time;
        _logger = logger;
        _client = new k8s.Kubernetes(ClientConfiguration(options));
        var api = new KubernetesApiClient(_client);
        _watchers = WatchedKind.All.Select(kind => new KindWatcher(kind, api, options, time, logger, Signal)).ToArray();
        _secrets = new SecretReader(api, options, time, logger, Signal);
        if (options.ClusterService is { } service)
        {
            var selector = Uri.EscapeDataString($"{ReadyReplicas.ServiceNameLabel}={service.Name}");
            _replicaSlices = new KindWatcher(WatchedKind.EndpointSlices, api, options, time, logger, ReplicasMayHaveChanged,
                $"{WatchedKind.EndpointSlices.Path(service.Namespace)}?labelSelector={selector}");
        }
        if (options.NodeName is { } node && options.Pods is not null)
        {
            var selector = Uri.EscapeDataString($"spec.nodeName={node}");
            _nodePods = new KindWatcher(WatchedKind.Pods, api, options, time, logger, PodsChanged, $"{WatchedKind.Pods.Path(null)}?fieldSelector={selector}");
        }
        _all = [.. _watchers, .. new[] { _replicaSlices, _nodePods }.OfType<KindWatcher>()];
        _builder = new ResourceSetBuilder(options, logger);
        _events = new TenantEventRecorder(api, options.NodeName ?? Environment.MachineName, time, logger);
        options.ProjectedTokens?.Attach(new TokenReviewer(api));
    }

    public string Description => $"kubernetes ({Scope})";

    private string Scope => _options.Namespace is { } ns ? $"namespace {ns}" : "all namespaces";

    /// <summary>True once every kind has been listed at least once.</summary>
    public bool IsSynced => _all.All(w => w.Synced.IsCompletedSuccessfully);

    private static k8s.KubernetesClientConfiguration ClientConfiguration(KubernetesSourceOptions options)
    {
        if (options.ClientConfiguration is { } ready)
        {
            return ready;
        }
        try
        {
            if (options.KubeconfigPath is { } path)
            {
                return k8s.KubernetesClientConfiguration.BuildConfigFromConfigFile(path);
            }
            return k8s.KubernetesClientConfiguration.IsInCluster()
                ? k8s.KubernetesClientConfiguration.InClusterConfig()
                : k8s.KubernetesClientConfiguration.BuildDefaultConfig();
        }
        catch (k8s.Exceptions.KubeConfigException ex)
        {
            throw new IOException($"no way to reach the Kubernetes API (not in a cluster, and the kubeconfig cannot be used): {ex.Message}", ex);
        }
    }

    /// <summary>Builds the set from the watched copies; the first call starts the watches and waits for every kind's first list.</summary>
    public async ValueTask<ResourceSet> LoadAsync(CancellationToken cancellationToken)
    {
        Start();
        var synced = Task.WhenAll(_all.Select(w => w.Synced));
        if (!synced.IsCompleted)
        {
            try
            {
                await synced.WaitAsync(_options.InitialSyncTimeout, _time, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                var waiting = string.Join(", ", _all.Where(w => !w.Synced.IsCompleted).Select(w => w.Kind.ToString()));
                throw new IOException(
                    $"the Kubernetes API at {_client.BaseUri} did not list {waiting} within {_options.InitialSyncTimeout.TotalSeconds}s (see the warnings above for why)");
            }
        }
        var kinds = _watchers.Select(w => (w.Kind, w.Snapshot())).ToList();
        var secrets = await _secrets.ReadAsync(SecretReferences.Collect(kinds), cancellationToken).ConfigureAwait(false);
        var (set, notices) = _builder.Build(kinds, secrets);
        _events.Record(notices);
        return set with { RuntimeReplicas = CountReplicas() };
    }

    /// <summary>The ready replicas of the cluster Service now (1 without one), logged when the number changes.</summary>
    private int CountReplicas()
    {
        if (_replicaSlices is null)
        {
            return 1;
        }
        var replicas = ReadyReplicas.Count(_replicaSlices.Snapshot());
        if (Interlocked.Exchange(ref _replicas, replicas) != replicas)
        {
            KubernetesLog.ReplicasChanged(_logger, _options.ClusterService!.ToString(), replicas);
        }
        return replicas;
    }

    /// <summary>A slice changed: reload only when the number of ready replicas did, not for every endpoint update.</summary>
    private void ReplicasMayHaveChanged()
    {
        if (ReadyReplicas.Count(_replicaSlices!.Snapshot()) != Volatile.Read(ref _replicas))
        {
            Signal();
        }
    }

    /// <summary>A pod of this node changed: publish the running pods by address (no reload: no resource changed).</summary>
    private void PodsChanged() => _options.Pods!.Replace(NodePods.Map(_nodePods!.Snapshot()));

    public void Watch(Func<CancellationToken, Task> changed)
    {
        Start();
        _reloadLoop = Task.Run(() => ReloadLoopAsync(changed));
    }

    private void Start()
    {
        lock (_startGate)
        {
            if (_running.Length > 0)
            {
                return;
            }
            KubernetesLog.Connecting(_logger, _client.BaseUri?.ToString() ?? "", Scope);
            var token = _stopping.Token;
            _running = [.. _all.Select(w => Task.Run(() => w.RunAsync(token), token)), Task.Run(() => _secrets.RunAsync(token), token)];
        }
    }

    private void Signal() => _signal.Release();

    /// <summary>Folds a burst of changes into one reload after <see cref="KubernetesSourceOptions.DebounceTime"/> of quiet.</summary>
    private async Task ReloadLoopAsync(Func<CancellationToken, Task> changed)
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                await _signal.WaitAsync(token).ConfigureAwait(false);
                await Task.Delay(_options.DebounceTime, _time, token).ConfigureAwait(false);
                while (_signal.CurrentCount > 0)
                {
                    await _signal.WaitAsync(token).ConfigureAwait(false);
                }
                await changed(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // The callback reports its own failures; the reload loop must survive them.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _options.ProjectedTokens?.Attach(null);
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var task in _running.Append(_reloadLoop ?? Task.CompletedTask))
        {
            await task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        await _events.DisposeAsync().ConfigureAwait(false);
        _client.Dispose();
        _stopping.Dispose();
    }
}
