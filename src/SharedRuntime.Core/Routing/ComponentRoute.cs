using Polly;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Routing;

/// <summary>
/// One tenant's way into one component, compiled when a snapshot is built: the component (instance and configuration),
/// the guard every tenant's calls into that instance share (backend breaker and fair queue), and the tenant's outbound
/// Resiliency pipeline for it (<see cref="ResiliencePipeline.Empty"/> when no Resiliency governs it). A guarded call
/// runs Resiliency -> backend breaker -> fair queue -> the component.
/// </summary>
/// <remarks>
/// A reload that keeps the tenant, the component instance and the Resiliency policies that govern the pair keeps the
/// route, so its pipeline's breaker state and the guard's carry on; anything else compiles a new one, and the old one
/// is dropped with the snapshot that held it (a pipeline built by a <see cref="ResiliencePipelineBuilder"/> holds
/// nothing to dispose).
/// </remarks>
internal sealed class ComponentRoute
{
    public ComponentRoute(string appId, ComponentEntry component, OutboundPolicy? policy, ResiliencePipeline pipeline)
    {
        AppId = appId;
        Component = component;
        Policy = policy;
        Pipeline = pipeline;
    }

    /// <summary>The tenant the route is compiled for: its calls wait in this app's line of the fair queue.</summary>
    public string AppId { get; }

    /// <summary>
    /// The component entry the route was compiled from. A later entry for the same instance (a reload) has the same
    /// fingerprint, so what is read from here (type, metadata, guard) is the same.
    /// </summary>
    public ComponentEntry Component { get; }

    public string Name => Component.Name;

    public IComponent? Instance => Component.Instance;

    /// <summary>What the tenant may do with topics here (a pub/sub component); null for other building blocks.</summary>
    public TopicRules? Topics => Component.Topics;

    /// <summary>The Resiliency policies the pipeline was built from; null when none governs the tenant's calls here.</summary>
    public OutboundPolicy? Policy { get; }

    public ResiliencePipeline Pipeline { get; }

    /// <summary>
    /// Runs <paramref name="call"/> through the tenant's Resiliency pipeline, the backend breaker and the fair queue. A
    /// refusal by the breaker or the queue is a value, not an exception (and is not retried); a failure of the call
    /// itself is thrown, and counted by the breaker when it says the backend is unwell
    /// (<see cref="ComponentGuard.IsBackendFailure"/>). Only for a ready component (<see cref="Instance"/> not null).
    /// </summary>
    public ValueTask<GuardOutcome<T>> RunGuardedAsync<T, TState>(TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        if (ReferenceEquals(Pipeline, ResiliencePipeline.Empty))
        {
            return TryRunAsync(state, call, cancellationToken);
        }
        return Pipeline.ExecuteAsync(
            static (s, token) => s.route.TryRunAsync(s.state, s.call, token),
            (route: this, state, call),
            cancellationToken);
    }

    /// <summary>Breaker, then the tenant's place in the fair queue, then the call.</summary>
    private ValueTask<GuardOutcome<T>> TryRunAsync<T, TState>(TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        if (!Component.Guard!.Breaker.TryAcquire(out var retryAfter))
        {
            return new ValueTask<GuardOutcome<T>>(new GuardOutcome<T>(default!, GuardRefusal.BackendUnavailable, retryAfter));
        }
        return RunInSlotAsync(Component.Guard, state, call, cancellationToken);
    }

    private async ValueTask<GuardOutcome<T>> RunInSlotAsync<T, TState>(ComponentGuard guard, TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        try
        {
            if (!await guard.Queue.TryEnterAsync(AppId, cancellationToken).ConfigureAwait(false))
            {
                guard.Breaker.RecordNeutral();
                return new GuardOutcome<T>(default!, GuardRefusal.LineFull, TimeSpan.FromSeconds(1));
            }
            T result;
            try
            {
                result = await call(state, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                guard.Queue.Exit();
            }
            guard.Breaker.RecordSuccess();
            return new GuardOutcome<T>(result, GuardRefusal.None, TimeSpan.Zero);
        }
        catch (Exception ex) when (ComponentGuard.IsBackendFailure(ex))
        {
            guard.Breaker.RecordFailure();
            throw;
        }
        catch
        {
            guard.Breaker.RecordNeutral();
            throw;
        }
    }

    /// <summary>Why the guard refused a call of this tenant, in the words the thrown refusals use.</summary>
    public string Describe(GuardRefusal refusal, TimeSpan retryAfter) => refusal switch
    {
        GuardRefusal.BackendUnavailable => BackendUnavailableException.MessageFor(Name, retryAfter),
        GuardRefusal.LineFull => FairQueueFullException.MessageFor(AppId, Component.Guard!.Queue.MaxQueuedPerTenant),
        _ => "",
    };

    /// <summary>Runs <paramref name="call"/> through the tenant's Resiliency pipeline only (building blocks whose calls the guard does not share out).</summary>
    public ValueTask<T> RunAsync<T, TState>(TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken) =>
        ReferenceEquals(Pipeline, ResiliencePipeline.Empty)
            ? call(state, cancellationToken)
            : Pipeline.ExecuteAsync(call, state, cancellationToken);

    public override string ToString() => $"{AppId} -> {Component.Category}/{Name}";
}
