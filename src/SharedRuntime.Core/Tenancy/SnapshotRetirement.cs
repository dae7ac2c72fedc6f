using Microsoft.Extensions.Logging;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Retires what a new snapshot replaced: component instances it no longer holds and tenants whose admission it no
/// longer holds are disposed after <see cref="DrainTime"/>, so requests still using them can finish.
/// </summary>
internal sealed class SnapshotRetirement(TimeProvider time, ILogger logger)
{
    private readonly List<Task> _pending = [];
    private readonly CancellationTokenSource _disposing = new();

    /// <summary>How long a replaced component or tenant is kept for requests still using it.</summary>
    public TimeSpan DrainTime { get; set; } = TimeSpan.FromSeconds(30);

    /// <param name="changes">The tenants <paramref name="next"/> made or removed; the others were carried over with their admission.</param>
    public void Retire(RuntimeSnapshot previous, RuntimeSnapshot next, TenantChanges changes)
    {
        var liveInstances = next.Components.Values.Select(c => c.Instance).Where(i => i is not null).ToHashSet();
        var retiredComponents = previous.Components.Values
            .Where(c => c.Instance is not null && !liveInstances.Contains(c.Instance))
            .ToList();
        // A tenant carried into the new snapshot keeps its admission; one changed or removed is retired with it.
        List<TenantContext> retiredTenants = [.. changes.Removed];
        foreach (var (before, after) in changes.Updated)
        {
            if (before is not null && !ReferenceEquals(before.Admission, after.Admission))
            {
                retiredTenants.Add(before);
            }
        }
        foreach (var component in previous.Components.Values.Where(c => !next.Components.ContainsKey(c.Config.Key)))
        {
            CoreLog.ComponentRemoved(logger, component.Name);
        }
        if (retiredComponents.Count == 0 && retiredTenants.Count == 0)
        {
            return;
        }
        lock (_pending)
        {
            _pending.RemoveAll(t => t.IsCompleted);
            _pending.Add(RetireAfterDrainAsync(retiredComponents, retiredTenants));
        }
    }

    /// <summary>Disposes everything retired so far without waiting out its drain time, then everything <paramref name="current"/> holds.</summary>
    public async Task DisposeAsync(RuntimeSnapshot current)
    {
        await _disposing.CancelAsync().ConfigureAwait(false);
        Task[] pending;
        lock (_pending)
        {
            pending = [.. _pending];
        }
        await Task.WhenAll(pending).ConfigureAwait(false);
        foreach (var component in current.Components.Values.Where(c => c.Instance is not null))
        {
            await ComponentBuilder.DisposeQuietlyAsync(logger, component.Name, component.Instance!).ConfigureAwait(false);
        }
        foreach (var tenant in current.Tenants.Values)
        {
            tenant.Dispose();
        }
    }

    private async Task RetireAfterDrainAsync(List<ComponentEntry> components, List<TenantContext> tenants)
    {
        try
        {
            await Task.Delay(DrainTime, time, _disposing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Shutting down: dispose now.
        }
        foreach (var component in components)
        {
            await ComponentBuilder.DisposeQuietlyAsync(logger, component.Name, component.Instance!).ConfigureAwait(false);
        }
        foreach (var tenant in tenants)
        {
            tenant.Dispose();
        }
    }
}
