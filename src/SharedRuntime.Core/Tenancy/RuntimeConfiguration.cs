using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Metrics;
using SharedRuntime.Routing;

namespace SharedRuntime.Tenancy;

/// <summary>
/// The one configuration pipeline: takes a <see cref="ResourceSet"/> from any source, checks it, builds the
/// components and tenants that changed (reusing the rest, with their data and limiter state), compiles each tenant's
/// routes to its components (<see cref="Routing.RouteCompiler"/>, keeping the routes a change leaves valid), and swaps in
/// a new <see cref="RuntimeSnapshot"/>. A set that fails its checks changes nothing.
/// </summary>
public sealed partial class RuntimeConfiguration : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, IComponentFactory> _factories;
    private readonly IServiceProvider _services;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly RuntimeMetrics _metrics;
    private readonly Func<string, string?> _environment;
    private readonly SemaphoreSlim _applyGate = new(1, 1);
    private readonly Dictionary<string, TenantState> _tenantStates = new(StringComparer.Ordinal);
    private readonly List<Task> _pendingDisposals = [];
    private volatile RuntimeSnapshot _current = RuntimeSnapshot.Empty;
    private IResourceSource? _source;

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
        _services = services;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        DefaultLimits = defaultLimits;
        _environment = environment ?? Environment.GetEnvironmentVariable;
    }

    /// <summary>How long a replaced component or tenant is kept for requests still using it.</summary>
    public TimeSpan DrainTime { get; init; } = TimeSpan.FromSeconds(30);

    public TenantLimits DefaultLimits { get; }

    /// <summary>All tenants share one admission sized by <see cref="DefaultLimits"/> (no isolation; for benchmark baselines).</summary>
    public bool SharedAdmission { get; init; }

    private TenantAdmission? _sharedAdmission;

    /// <summary>
    /// Builds each tenant's outbound Resiliency pipeline for a component when its routes are compiled; without one,
    /// routes have no Resiliency pipeline.
    /// </summary>
    public IOutboundPipelineFactory? OutboundPipelines { get; init; }

    /// <summary>The node-wide memory ceiling every tenant's budget is charged against as well.</summary>
    public MemoryBudget NodeMemory { get; init; } = new(MemoryBudget.DefaultNodeBytes);

    public RuntimeSnapshot Current => _current;

    private int _refusedReloads;

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
        catch (Exception ex) when (IsSourceFailure(ex) && LastGood is { Exists: true } cache)
        {
            await StartFromLastGoodAsync(cache, ex, cancellationToken).ConfigureAwait(false);
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
            LeaveLastGood();
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
        Validate(set);
        await _applyGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var previous = _current;
            var components = await BuildComponentsAsync(set, previous, cancellationToken).ConfigureAwait(false);
            var tenants = BuildTenants(set, previous, components);
            var next = new RuntimeSnapshot(previous.Generation + 1, tenants, components, set);
            _metrics.RefusedTenants(set.RejectedTenants.Count);
            _current = next;
            _metrics.Reloaded(true);
            foreach (var refused in set.RejectedTenants)
            {
                CoreLog.TenantRefused(_logger, refused.File, refused.Document, refused.Field, refused.Problem);
            }
            foreach (var (refused, scopes) in set.RejectedSubscriptions)
            {
                CoreLog.SubscriptionRefused(_logger, scopes.Count == 0 ? "every app" : string.Join(", ", scopes), refused.File, refused.Document, refused.Field, refused.Problem);
            }
            CoreLog.ConfigurationApplied(_logger, source, tenants.Count, components.Count, next.Generation);
            SaveLastGood(set);
            RetireReplaced(previous, next);
            Changed?.Invoke(next);
        }
        finally
        {
            _applyGate.Release();
        }
    }

    private void Validate(ResourceSet set)
    {
        foreach (var component in set.Components)
        {
            ValidateComponent(component);
        }
    }

    /// <summary>Why <paramref name="component"/> cannot be served here (an unknown type, a key prefix that would share keys), or null.</summary>
    public string? ComponentProblem(ComponentConfig component)
    {
        try
        {
            ValidateComponent(component);
            return null;
        }
        catch (ResourceException ex)
        {
            return ex.Problem;
        }
    }

    private void ValidateComponent(ComponentConfig component)
    {
        if (!_factories.ContainsKey(component.Type))
        {
            throw new ResourceException(SourceFile(component.Source), $"Component/{component.Name}", "spec.type",
                $"unknown component type '{component.Type}'; known types are {string.Join(", ", _factories.Keys.Order(StringComparer.Ordinal))}");
        }
        var keyPrefix = component.Metadata.FirstOrDefault(m => string.Equals(m.Name, "keyPrefix", StringComparison.OrdinalIgnoreCase));
        if (component.Category == "state" && keyPrefix?.Value is { } prefix && !string.Equals(prefix, "appid", StringComparison.OrdinalIgnoreCase))
        {
            throw new ResourceException(SourceFile(component.Source), $"Component/{component.Name}", "spec.metadata.keyPrefix",
                $"'{prefix}' would let apps share keys; a shared runtime always prefixes state keys with the app-id (use 'appid' or leave it out)");
        }
    }

    private static string SourceFile(string source)
    {
        var index = source.LastIndexOf(": ", StringComparison.Ordinal);
        return index < 0 ? source : source[..index];
    }

    private async Task<List<ComponentEntry>> BuildComponentsAsync(ResourceSet set, RuntimeSnapshot previous, CancellationToken cancellationToken)
    {
        var result = new List<ComponentEntry>();
        var built = new Dictionary<string, ComponentEntry>(StringComparer.Ordinal);
        // Secret stores first: other components may resolve secretKeyRefs through them.
        foreach (var config in set.Components.OrderBy(c => c.Category == "secretstores" ? 0 : 1))
        {
            if (previous.Components.TryGetValue(config.Name, out var existing) &&
                existing.Config.Fingerprint == config.Fingerprint && existing.Status == ComponentStatus.Ready)
            {
                var kept = existing.Config == config ? existing : new ComponentEntry(config, existing.Instance, null, existing.Guard);
                result.Add(kept);
                built[config.Name] = kept;
                continue;
            }
            var entry = await CreateComponentAsync(config, built, cancellationToken).ConfigureAwait(false);
            result.Add(entry);
            built[config.Name] = entry;
        }
        return result;
    }

    private async Task<ComponentEntry> CreateComponentAsync(ComponentConfig config, Dictionary<string, ComponentEntry> built, CancellationToken cancellationToken)
    {
        IComponent? instance = null;
        try
        {
            var metadata = await ResolveMetadataAsync(config, built, cancellationToken).ConfigureAwait(false);
            instance = _factories[config.Type].Create(new ComponentContext
            {
                Name = config.Name,
                Type = config.Type,
                Version = config.Version,
                Metadata = metadata,
                BaseDirectory = config.BaseDirectory,
                Services = _services,
            });
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(config.InitTimeout);
            await instance.InitAsync(timeout.Token).AsTask().WaitAsync(config.InitTimeout, _time, cancellationToken).ConfigureAwait(false);
            CoreLog.ComponentReady(_logger, config.Name, config.Type);
            return new ComponentEntry(config, instance, null, ComponentGuard.Create(config, _time));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            var problem = ex is TimeoutException or OperationCanceledException
                ? $"initialisation took longer than initTimeout {config.InitTimeout.TotalSeconds}s"
                : ex.Message;
            CoreLog.ComponentFailed(_logger, config.Name, config.Type, problem);
            if (instance is not null)
            {
                await DisposeQuietlyAsync(config.Name, instance).ConfigureAwait(false);
            }
            return new ComponentEntry(config, null, problem);
        }
    }

    private async Task<IReadOnlyDictionary<string, string>> ResolveMetadataAsync(ComponentConfig config, Dictionary<string, ComponentEntry> built, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in config.Metadata)
        {
            if (item.SecretKeyRef is { } reference)
            {
                if (config.SecretStore is null)
                {
                    throw new ComponentException($"metadata '{item.Name}' uses secretKeyRef but the component names no auth.secretStore");
                }
                if (!built.TryGetValue(config.SecretStore, out var storeEntry) || storeEntry.Instance is not ISecretStore store)
                {
                    throw new ComponentException($"secret store '{config.SecretStore}' named in auth.secretStore is not available");
                }
                var secret = await store.GetSecretAsync(reference.Name, new Dictionary<string, string>(), cancellationToken).ConfigureAwait(false);
                if (secret is null || !secret.TryGetValue(reference.Key, out var value))
                {
                    throw new ComponentException($"metadata '{item.Name}': secret '{reference.Name}' key '{reference.Key}' not found in '{config.SecretStore}'");
                }
                result[item.Name] = value;
            }
            else if (item.EnvRef is { } variable)
            {
                result[item.Name] = _environment(variable) ?? throw new ComponentException($"metadata '{item.Name}': environment variable '{variable}' is not set");
            }
            else
            {
                result[item.Name] = item.Value ?? "";
            }
        }
        return result;
    }

    /// <summary>
    /// The tenants of <paramref name="set"/>, each with its routes to <paramref name="components"/>. A tenant whose
    /// resource and limits are unchanged keeps its admission, memory budget and the routes that are still valid.
    /// </summary>
    private List<TenantContext> BuildTenants(ResourceSet set, RuntimeSnapshot previous, List<ComponentEntry> components)
    {
        var compiler = new RouteCompiler(OutboundPipelines);
        var resiliencies = set.Resiliencies.OrderBy(r => r.Name, StringComparer.Ordinal).ToList();
        var result = new List<TenantContext>(set.Tenants.Count);
        foreach (var config in set.Tenants)
        {
            var limits = SharedAdmission ? DefaultLimits : config.Limits.Resolve(DefaultLimits);
            if (previous.Tenants.TryGetValue(config.AppId, out var existing) && existing.Config == config && existing.Limits == limits)
            {
                result.Add(existing.WithRoutes(compiler.Compile(config.AppId, existing.Routes, components, resiliencies)));
                continue;
            }
            if (!_tenantStates.TryGetValue(config.AppId, out var state))
            {
                state = new TenantState(config.AppId);
                _tenantStates[config.AppId] = state;
            }
            result.Add(new TenantContext(config, limits, state, SharedAdmission ? _sharedAdmission ??= new TenantAdmission(DefaultLimits) : null, NodeMemory,
                compiler.Compile(config.AppId, null, components, resiliencies)));
            if (existing is null)
            {
                CoreLog.TenantAdded(_logger, config.AppId);
            }
            else
            {
                CoreLog.TenantChanged(_logger, config.AppId);
            }
        }
        return result;
    }

    private void RetireReplaced(RuntimeSnapshot previous, RuntimeSnapshot next)
    {
        var liveInstances = next.Components.Values.Select(c => c.Instance).Where(i => i is not null).ToHashSet();
        var retiredComponents = previous.Components.Values
            .Where(c => c.Instance is not null && !liveInstances.Contains(c.Instance))
            .ToList();
        // A tenant carried into the new snapshot keeps its admission; one changed or removed is retired with it.
        var retiredTenants = previous.Tenants.Values
            .Where(t => !next.Tenants.TryGetValue(t.AppId, out var now) || !ReferenceEquals(now.Admission, t.Admission))
            .ToList();
        foreach (var tenant in retiredTenants.Where(t => !next.Tenants.ContainsKey(t.AppId)))
        {
            _tenantStates.Remove(tenant.AppId);
            CoreLog.TenantRemoved(_logger, tenant.AppId);
        }
        foreach (var component in previous.Components.Values.Where(c => !next.Components.ContainsKey(c.Name)))
        {
            CoreLog.ComponentRemoved(_logger, component.Name);
        }
        if (retiredComponents.Count == 0 && retiredTenants.Count == 0)
        {
            return;
        }
        lock (_pendingDisposals)
        {
            _pendingDisposals.RemoveAll(t => t.IsCompleted);
            _pendingDisposals.Add(RetireAfterDrainAsync(retiredComponents, retiredTenants));
        }
    }

    private async Task RetireAfterDrainAsync(List<ComponentEntry> components, List<TenantContext> tenants)
    {
        try
        {
            await Task.Delay(DrainTime, _time, _disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Shutting down: dispose now.
        }
        foreach (var component in components)
        {
            await DisposeQuietlyAsync(component.Name, component.Instance!).ConfigureAwait(false);
        }
        foreach (var tenant in tenants)
        {
            tenant.Dispose();
        }
    }

    private readonly CancellationTokenSource _disposing = new();

    private async Task DisposeQuietlyAsync(string name, IComponent instance)
    {
        try
        {
            await instance.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            CoreLog.ComponentDisposeFailed(_logger, ex, name);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_source is not null)
        {
            await _source.DisposeAsync().ConfigureAwait(false);
        }
        await _disposing.CancelAsync().ConfigureAwait(false);
        Task[] pending;
        lock (_pendingDisposals)
        {
            pending = [.. _pendingDisposals];
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
        foreach (var component in _current.Components.Values.Where(c => c.Instance is not null))
        {
            await DisposeQuietlyAsync(component.Name, component.Instance!).ConfigureAwait(false);
        }
        foreach (var tenant in _current.Tenants.Values)
        {
            tenant.Dispose();
        }
    }
}
