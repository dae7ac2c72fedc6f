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

    /// <summary>The Resiliency policies the pipeline was built from; null when none governs the tenant's calls here.</summary>
    public OutboundPolicy? Policy { get; }

    public ResiliencePipeline Pipeline { get; }

    /// <summary>
    /// Runs <paramref name="call"/> through the tenant's Resiliency pipeline, the backend breaker and the fair queue. A
    /// refusal by the breaker or the queue is a value, not an exception (and is not retried). Only for a ready
    /// component (<see cref="Instance"/> not null).
    /// </summary>
    public ValueTask<GuardOutcome<T>> RunGuardedAsync<T, TState>(TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken)
    {
        var guard = Component.Guard!;
        if (ReferenceEquals(Pipeline, ResiliencePipeline.Empty))
        {
            return guard.TryRunAsync(AppId, state, call, cancellationToken);
        }
        return Pipeline.ExecuteAsync(
            static (s, token) => s.guard.TryRunAsync(s.AppId, s.state, s.call, token),
            (guard, AppId, state, call),
            cancellationToken);
    }

    /// <summary>Runs <paramref name="call"/> through the tenant's Resiliency pipeline only (building blocks whose calls the guard does not share out).</summary>
    public ValueTask<T> RunAsync<T, TState>(TState state, Func<TState, CancellationToken, ValueTask<T>> call, CancellationToken cancellationToken) =>
        ReferenceEquals(Pipeline, ResiliencePipeline.Empty)
            ? call(state, cancellationToken)
            : Pipeline.ExecuteAsync(call, state, cancellationToken);

    public override string ToString() => $"{AppId} -> {Component.Category}/{Name}";
}
