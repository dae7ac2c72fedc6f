using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Metrics;
using SharedRuntime.Routing;

namespace SharedRuntime.Tenancy;

/// <summary>
/// The one configuration pipeline: takes a <see cref="ResourceSet"/> from any source, checks it
/// (<see cref="ComponentValidator"/>), builds the components and tenants that changed, reusing the rest with their
/// data and limiter state (<see cref="ComponentBuilder"/>, <see cref="TenantBuilder"/>, which compiles each tenant's
/// routes to its components and keeps the routes a change leaves valid), and swaps in a new
/// <see cref="RuntimeSnapshot"/>; then it caches the set (<see cref="LastGoodKeeper"/>) and retires what the new
/// snapshot replaced (<see cref="SnapshotRetirement"/>). A set that fails its checks changes nothing.
/// </summary>
public sealed class RuntimeConfiguration : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, IComponentFactory> _factories;
    private readonly ILogger _logger;
    private readonly RuntimeMetrics _metrics;
    private readonly ComponentValidator _validator;
    private readonly ComponentBuilder _components;
    private readonly TenantBuilder _tenants;
    private readonly LastGoodKeeper _lastGood;
    private readonly SnapshotRetirement _retirement;
    private readonly SemaphoreSlim _applyGate = new(1, 1);
    private volatile RuntimeSnapshot _current = RuntimeSnapshot.Empty;
    private IResourceSource? _source;
    private int _refusedReloads;

    public RuntimeConfiguration(
        IEnumerable<IComponentFactory> factories,
        IServiceProvider services,
        TimeProvider time,
        ILogger<RuntimeConfiguration> logger,
        RuntimeMetrics metrics,
        TenantLimits defaultLimits,
        Func<string, string?>? environment = null)
    {
        var byType = new Dictionary<string, IComponentFactory>(StringComparer.Ordinal);
        foreach (var factory in factories)
        {
            foreach (var type in factory.Types)
            {
                byType[type] = factory;
            }
        }
        _factories = byType;
        _logger = logger;
        _metrics = metrics;
        DefaultLimits = defaultLimits;
        _validator = new ComponentValidator(byType);
        _components = new ComponentBuilder(byType, services, time, logger, environment ?? Environment.GetEnvironmentVariable);
        _tenants = new TenantBuilder(defaultLimits, logger);
        _lastGood = new LastGoodKeeper(metrics, logger);
        _retirement = new SnapshotRetirement(time, logger);
        Pods = new PodDirectory(logger);
        ProjectedTokens = new ProjectedTokens(time, logger);
    }

    /// <summary>This node's running pods by address, for tenants whose token is bound to their pods.</summary>
    public PodDirectory Pods { get; }

    /// <summary>Tenants known by a projected ServiceAccount token, reviewed with the API server (Kubernetes mode only).</summary>
    public ProjectedTokens ProjectedTokens { get; }

    /// <summary>How long a replaced component or tenant is kept for requests still using it.</summary>
    public TimeSpan DrainTime { get => _retirement.DrainTime; init => _retirement.DrainTime = value; }

    public TenantLimits DefaultLimits { get; }

    /// <summary>All tenants share one admission sized by <see cref="DefaultLimits"/> (no isolation; for benchmark baselines).</summary>
    public bool SharedAdmission { get => _tenants.SharedAdmission; init => _tenants.SharedAdmission = value; }

    /// <summary>
    /// Builds each tenant's outbound Resiliency pipeline for a component when its routes are compiled; without one,
    /// routes have no Resiliency pipeline.
    /// </summary>
    public IOutboundPipelineFactory? OutboundPipelines { get => _tenants.OutboundPipelines; init => _tenants.OutboundPipelines = value; }

    /// <summary>The node-wide memory ceiling every tenant's budget is charged against as well.</summary>
    public MemoryBudget NodeMemory { get => _tenants.NodeMemory; init => _tenants.NodeMemory = value; }

    /// <summary>Scales every tenant's rate down in proportion to its limit while the process is saturated.</summary>
    internal FairShare FairShare { get => _tenants.FairShare; init => _tenants.FairShare = value; }

    /// <summary>Where the last good configuration is kept; null keeps none.</summary>
    public LastGoodResourceCache? LastGood { get => _lastGood.Cache; init => _lastGood.Cache = value; }

    /// <summary>True while the runtime serves the cached configuration because its source failed at start-up.</summary>
    public bool ServingLastGood => _lastGood.Serving;

    public RuntimeSnapshot Current => _current;

    /// <summary>How many reloads were refused because a resource was bad; the last good configuration stayed each time.</summary>
    public int RefusedReloads => Volatile.Read(ref _refusedReloads);

    /// <summary>Why the last refused reload was refused, or null.</summary>
    public string? LastReloadError { get; private set; }

    /// <summary>True once a first configuration has been applied.</summary>
    public bool IsLoaded => _current.Generation > 0;

    /// <summary>Raised after a new snapshot is in place (never concurrently).</summary>
    public event Action<RuntimeSnapshot>? Changed;

    public IReadOnlyCollection<string> KnownComponentTypes => _factories.Keys.ToArray();

    /// <summary>
    /// Loads from <paramref name="source"/> and then follows its changes. When the first load fails and
    /// <see cref="LastGood"/> holds a cache, starts from the cache instead (fail-static); otherwise a bad resource throws.
    /// </summary>
    public async Task StartAsync(IResourceSource source, CancellationToken cancellationToken)
    {
        _source = source;
        try
        {
            var set = await source.LoadAsync(cancellationToken).ConfigureAwait(false);
            await ApplyAsync(set, source.Description, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (LastGoodKeeper.IsSourceFailure(ex) && LastGood is { Exists: true } cache)
        {
            var set = await _lastGood.EnterAsync(cache, ex, cancellationToken).ConfigureAwait(false);
            await ApplyAsync(set, cache.Description, cancellationToken).ConfigureAwait(false);
        }
        source.Watch(ReloadAsync);
    }

    /// <summary>Loads the source again; a bad resource is logged and the last good configuration stays.</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken)
    {
        if (_source is null)
        {
            return;
        }
        try
        {
            var set = await _source.LoadAsync(cancellationToken).ConfigureAwait(false);
            await ApplyAsync(set, _source.Description, cancellationToken).ConfigureAwait(false);
            _lastGood.Leave(_source.Description);
        }
        catch (Exception ex) when (ex is ResourceException or IOException)
        {
            LastReloadError = ex.Message;
            Interlocked.Increment(ref _refusedReloads);
            _metrics.Reloaded(false);
            CoreLog.ReloadRefused(_logger, ex.Message);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // Anything else (a bug, a factory throwing) is logged with its stack; the last good configuration stays.
            LastReloadError = ex.Message;
            Interlocked.Increment(ref _refusedReloads);
            _metrics.Reloaded(false);
            CoreLog.ReloadFailed(_logger, ex);
        }
    }

    /// <summary>Checks and applies <paramref name="set"/>. Throws <see cref="ResourceException"/> and changes nothing when it is bad.</summary>
    public async Task ApplyAsync(ResourceSet set, string source, CancellationToken cancellationToken)
    {
        _validator.Validate(set);
        await _applyGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var previous = _current;
            var components = await _components.BuildAsync(set, previous, cancellationToken).ConfigureAwait(false);
            var changes = _tenants.Build(set, previous, components);
            // The files' texts go to the last-good cache below and are not kept with the snapshot.
            var next = new RuntimeSnapshot(previous, changes, components, set with { Documents = [] });
            var tenants = next.Tenants;
            _metrics.RefusedTenants(set.RejectedTenants.Count);
            _metrics.TenantLimits(tenants.Values.Select(t => (t.AppId, t.Limits, t.Config.Ceiling?.Clamps(t.Config.Limits).Count ?? 0)));
            _current = next;
            _metrics.Reloaded(true);
            LogRefusals(set);
            CoreLog.ConfigurationApplied(_logger, source, tenants.Count, components.Count, next.Generation);
            _lastGood.Save(set);
            _tenants.ForgetRemoved(changes);
            _retirement.Retire(previous, next, changes);
            Changed?.Invoke(next);
        }
        finally
        {
            _applyGate.Release();
        }
    }

    /// <summary>Why <paramref name="component"/> cannot be served here (an unknown type, a key prefix that would share keys), or null.</summary>
    public string? ComponentProblem(ComponentConfig component) => _validator.Problem(component);

    public async ValueTask DisposeAsync()
    {
        if (_source is not null)
        {
            await _source.DisposeAsync().ConfigureAwait(false);
        }
        await _retirement.DisposeAsync(_current).ConfigureAwait(false);
    }

    private void LogRefusals(ResourceSet set)
    {
        foreach (var refused in set.RejectedTenants)
        {
            CoreLog.TenantRefused(_logger, refused.File, refused.Document, refused.Field, refused.Problem);
        }
        foreach (var (refused, scopes) in set.RejectedSubscriptions)
        {
            CoreLog.SubscriptionRefused(_logger, scopes.Count == 0 ? "every app" : string.Join(", ", scopes), refused.File, refused.Document, refused.Field, refused.Problem);
        }
    }
}
