using System.Collections.Concurrent;
using SharedRuntime.Components;

namespace SharedRuntime.Tenancy;

/// <summary>
/// What one tenant stores in each of its state stores, as last read by this process. It only gives a write to one store
/// its allowance: the tenant's quota minus what it stores in its OTHER stores. The written store itself checks its own
/// usage atomically with the write (<see cref="IStateStore.TransactAsync(IReadOnlyList{StateOperation}, StateAllowance, CancellationToken)"/>),
/// so within one store the quota is exact across nodes; across stores it is as fresh as these readings.
/// A reading is refreshed in the background (an O(1) read of the store's kept usage) when it is older than
/// <see cref="MaxAge"/> or after this process wrote to that store; a store not read yet counts as empty until its first
/// reading arrives. The request path never waits for a reading. Bounded by the number of state stores the tenant sees.
/// </summary>
public sealed class TenantStateUsage
{
    /// <summary>How old a reading of another store's usage may get before it is refreshed.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private sealed class Slot
    {
        public Reading? Last;
        public int Refreshing;
    }

    private sealed record Reading(StateUsage Usage, DateTimeOffset At);

    /// <summary>Made as small as it can be, as every tenant keeps one: a slot per state store the tenant has besides the written one.</summary>
    private readonly ConcurrentDictionary<string, Slot> _stores = new(concurrencyLevel: 1, capacity: 1, StringComparer.Ordinal);

    /// <summary>What the tenant stores in its visible state stores other than <paramref name="storeName"/>, as last read.</summary>
    public StateUsage Elsewhere(TenantContext tenant, string storeName, TimeProvider time)
    {
        var total = default(StateUsage);
        foreach (var route in tenant.Routes.State.All)
        {
            if (route.Instance is not IStateStore store || string.Equals(route.Name, storeName, StringComparison.Ordinal))
            {
                continue;
            }
            var slot = _stores.GetOrAdd(route.Name, static _ => new Slot());
            var last = Volatile.Read(ref slot.Last);
            if (last is not null)
            {
                total += last.Usage;
            }
            if (last is null || time.GetUtcNow() - last.At > MaxAge)
            {
                Refresh(slot, store, tenant.AppId, time);
            }
        }
        return total;
    }

    /// <summary>True when some write reads <paramref name="storeName"/>'s usage (the tenant has another store).</summary>
    public bool IsTracked(string storeName) => _stores.ContainsKey(storeName);

    /// <summary>Reads <paramref name="storeName"/>'s usage again in the background.</summary>
    public void Refresh(IStateStore store, string storeName, string prefix, TimeProvider time)
    {
        if (_stores.TryGetValue(storeName, out var slot))
        {
            Refresh(slot, store, prefix, time);
        }
    }

    private static void Refresh(Slot slot, IStateStore store, string prefix, TimeProvider time)
    {
        if (Interlocked.CompareExchange(ref slot.Refreshing, 1, 0) == 0)
        {
            _ = RefreshAsync(slot, store, prefix, time);
        }
    }

    private static async Task RefreshAsync(Slot slot, IStateStore store, string prefix, TimeProvider time)
    {
        try
        {
            await Task.Yield();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10), time);
            var usage = await store.GetUsageAsync(prefix, timeout.Token).ConfigureAwait(false);
            Volatile.Write(ref slot.Last, new Reading(usage, time.GetUtcNow()));
        }
        catch (Exception ex) when (ex is ComponentException or OperationCanceledException or ObjectDisposedException)
        {
            // The last reading stays; the next write that needs it tries again.
        }
        finally
        {
            Volatile.Write(ref slot.Refreshing, 0);
        }
    }
}
