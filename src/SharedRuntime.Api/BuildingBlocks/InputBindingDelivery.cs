using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharedRuntime.AppChannel;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// Runs every input binding of the configuration (one reader per component instance, started and stopped as the
/// configuration changes) and delivers each event to every app the component is scoped to that has an appEndpoint, as
/// Dapr does: <c>POST /&lt;route&gt;</c> with the event's data as the body (<c>application/json</c>), its metadata as
/// headers, through the app's channel and the component's inbound Resiliency policy.
/// <para>
/// Bounds: one delivery per app and binding at a time; an event that comes while the app's previous one is still being
/// delivered is skipped for that app (logged), so a slow app never makes events pile up. An event the binding names the
/// same way in every runtime (a cron tick) is first claimed in the binding's <c>lockStore</c>, under the resource
/// <c>&lt;app&gt;||bindings||&lt;binding&gt;||&lt;occurrence&gt;</c> (an id the lock API cannot make, so no app can take or
/// release it): only the runtime whose claim succeeds delivers it, so each app gets it once across the cluster. When the
/// lock store is missing or failing the event is not delivered (at most once); without <c>lockStore</c> every runtime
/// serving the app delivers it.
/// </para>
/// </summary>
internal sealed partial class InputBindingDelivery : IHostedService, IAsyncDisposable
{
    private readonly RuntimeConfiguration _configuration;
    private readonly AppChannels _channels;
    private readonly ResiliencyPolicies _policies;
    private readonly ILogger _logger;
    private readonly AppHealthProbes? _health;
    private readonly Dictionary<IInputBinding, Reader> _readers = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<(string AppId, string Binding)> _inFlight = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly string _owner = $"{Environment.MachineName}/{Environment.ProcessId}/{Guid.NewGuid():N}";
    private int _deliveries;

    public InputBindingDelivery(RuntimeConfiguration configuration, AppChannels channels, ResiliencyPolicies policies, ILogger<InputBindingDelivery> logger,
        AppHealthProbes? health = null)
    {
        _health = health;
        _configuration = configuration;
        _channels = channels;
        _policies = policies;
        _logger = logger;
    }

    /// <summary>Events delivered to apps with a 2xx answer since start (for tests).</summary>
    public int Delivered => Volatile.Read(ref _deliveries);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _configuration.Changed += Reconcile;
        Reconcile(_configuration.Current);
        return Task.CompletedTask;
    }

    private void Reconcile(RuntimeSnapshot snapshot)
    {
        lock (_readers)
        {
            if (_stopping.IsCancellationRequested)
            {
                return;
            }
            var current = new HashSet<IInputBinding>(ReferenceEqualityComparer.Instance);
            foreach (var entry in snapshot.Components.Values)
            {
                if (entry.Instance is IInputBinding binding)
                {
                    current.Add(binding);
                    if (!_readers.ContainsKey(binding))
                    {
                        _readers[binding] = Reader.Start(this, entry.Name, binding, _stopping.Token);
                    }
                }
            }
            foreach (var (binding, reader) in _readers.Where(r => !current.Contains(r.Key)).ToList())
            {
                reader.Stop();
                _readers.Remove(binding);
            }
        }
    }

    /// <summary>One event: a delivery started for each app that sees this binding instance, unless one is still running.</summary>
    private ValueTask OnEventAsync(string name, IInputBinding binding, InputBindingEvent bindingEvent, CancellationToken cancellationToken)
    {
        var snapshot = _configuration.Current;
        if (snapshot.Components.Values.FirstOrDefault(c => ReferenceEquals(c.Instance, binding)) is not { } entry)
        {
            return ValueTask.CompletedTask; // replaced meanwhile: its successor delivers
        }
        foreach (var tenant in snapshot.Tenants.Values)
        {
            if (!entry.IsVisibleTo(tenant.Config) || _channels.Find(tenant.AppId) is null)
            {
                continue;
            }
            if (_health?.IsHealthy(tenant.AppId) == false)
            {
                Unhealthy(_logger, tenant.AppId, name);
                continue; // as Dapr stops an unhealthy app's input bindings
            }
            lock (_inFlight)
            {
                if (!_inFlight.Add((tenant.AppId, name)))
                {
                    StillDelivering(_logger, tenant.AppId, name);
                    continue;
                }
            }
            _ = DeliverAsync(snapshot, tenant.AppId, name, binding, bindingEvent, cancellationToken);
        }
        return ValueTask.CompletedTask;
    }

    private async Task DeliverAsync(RuntimeSnapshot snapshot, string appId, string name, IInputBinding binding, InputBindingEvent bindingEvent, CancellationToken cancellationToken)
    {
        await Task.Yield();
        try
        {
            if (bindingEvent.Occurrence is { } occurrence && binding.LockStore is { } lockStoreName &&
                !await ClaimAsync(snapshot, appId, name, lockStoreName, binding.ClaimDuration, occurrence, cancellationToken).ConfigureAwait(false))
            {
                return;
            }
            var problem = await AppPost.SendAsync(_channels, _policies, appId, name, $"bindings/{name}", binding.Route,
                bindingEvent.Data, bindingEvent.Metadata, cancellationToken).ConfigureAwait(false);
            if (problem is null)
            {
                Interlocked.Increment(ref _deliveries);
            }
            else if (!cancellationToken.IsCancellationRequested)
            {
                NotDelivered(_logger, appId, name, problem);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            NotDelivered(_logger, appId, name, ex.Message);
        }
        finally
        {
            lock (_inFlight)
            {
                _inFlight.Remove((appId, name));
            }
        }
    }

    /// <summary>Whether this runtime is the one that delivers the occurrence to the app: its claim in the lock store succeeded.</summary>
    private async Task<bool> ClaimAsync(RuntimeSnapshot snapshot, string appId, string name, string lockStoreName, TimeSpan duration, string occurrence, CancellationToken cancellationToken)
    {
        var @namespace = snapshot.Tenants.TryGetValue(appId, out var claimant) ? claimant.Namespace : null;
        if (!snapshot.Components.TryGetValue(ResourceNamespace.Key(lockStoreName, @namespace), out var entry) || entry.Instance is not ILockStore store)
        {
            NotClaimed(_logger, appId, name, lockStoreName, "it is not a lock store that is available");
            return false;
        }
        var resource = string.Join(StateKeys.Separator, appId, "bindings", name, occurrence);
        try
        {
            // Through the app's route to the store when it has one (breaker, fair queue), as the app's own lock calls go.
            if (entry.Guard is not null && snapshot.Tenants.TryGetValue(appId, out var tenant) && tenant.Routes.LockStores.Find(lockStoreName) is { } route)
            {
                var outcome = await route.RunGuardedAsync((store, resource, owner: _owner, duration),
                    static (s, token) => s.store.TryLockAsync(s.resource, s.owner, s.duration, token), cancellationToken).ConfigureAwait(false);
                if (outcome.IsRefused)
                {
                    NotClaimed(_logger, appId, name, lockStoreName, route.Describe(outcome.Refusal, outcome.RetryAfter));
                    return false;
                }
                return outcome.Value;
            }
            return await store.TryLockAsync(resource, _owner, duration, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            NotClaimed(_logger, appId, name, lockStoreName, ex.Message);
            return false;
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _configuration.Changed -= Reconcile;
        List<Reader> readers;
        lock (_readers)
        {
            _stopping.Cancel();
            readers = [.. _readers.Values];
            _readers.Clear();
        }
        foreach (var reader in readers)
        {
            reader.Stop();
            await reader.Completion.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync(CancellationToken.None));

    /// <summary>The loop reading one binding instance, stopped when the instance leaves the configuration.</summary>
    private sealed class Reader
    {
        private readonly CancellationTokenSource _stop;

        private Reader(CancellationTokenSource stop, Task completion)
        {
            _stop = stop;
            Completion = completion;
        }

        public Task Completion { get; }

        public static Reader Start(InputBindingDelivery owner, string name, IInputBinding binding, CancellationToken stopping)
        {
            var stop = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            var completion = Task.Run(async () =>
            {
                try
                {
                    await binding.ReadAsync((e, token) => owner.OnEventAsync(name, binding, e, token), stop.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (!stop.IsCancellationRequested)
                {
                    ReadFailed(owner._logger, name, ex);
                }
                catch (OperationCanceledException)
                {
                }
            }, CancellationToken.None);
            return new Reader(stop, completion);
        }

        public void Stop() => _stop.Cancel();
    }

    [LoggerMessage(2300, LogLevel.Warning, "Tenant {AppId}: an event of input binding {Binding} was not delivered: {Problem}")]
    private static partial void NotDelivered(ILogger logger, string appId, string binding, string problem);

    [LoggerMessage(2301, LogLevel.Warning, "Tenant {AppId}: an event of input binding {Binding} was skipped, the previous one is still being delivered")]
    private static partial void StillDelivering(ILogger logger, string appId, string binding);

    [LoggerMessage(2302, LogLevel.Warning, "Tenant {AppId}: an event of input binding {Binding} was not delivered: claiming it in lock store {LockStore} failed ({Problem})")]
    private static partial void NotClaimed(ILogger logger, string appId, string binding, string lockStore, string problem);

    [LoggerMessage(2304, LogLevel.Debug, "Tenant {AppId}: an event of input binding {Binding} was not delivered, the app is unhealthy")]
    private static partial void Unhealthy(ILogger logger, string appId, string binding);

    [LoggerMessage(2303, LogLevel.Error, "Input binding {Binding} stopped reading")]
    private static partial void ReadFailed(ILogger logger, string binding, Exception exception);
}
