using System.Collections.Concurrent;
using SharedRuntime.Components;

namespace SharedRuntime.Tenancy;

/// <summary>
/// What one tenant stores in each of its state stores, as last read by this process. It only gives a write to one store
/// its allowance: the tenant's quota minus what it stores in its OTHER stores. The written store itself checks its own
/// usage atomically with the write (<see cref="IStateStore.TransactAsync(IReadOnlyList{StateOperation}, StateAllowance, CancellationToken)"/>),
/// so within one store the quota is exact across nodes; across stores it is as fresh as these readings.
/// A reading is refreshed in the background (an O(1) read of the store's kept usage) by a write to another store that
/// needs it, when it is older than <see cref="MaxAge"/> or this process wrote to its store since it was taken; a store
/// not read yet counts as empty until its first reading arrives. A write never reads its own store's usage back: a run
/// of writes to one store costs the backend nothing more than the writes. The request path never waits for a reading.
/// Bounded by the number of state stores the tenant sees.
/// </summary>
public sealed class TenantStateUsage
{
    /// <summary>How old a reading of another store's usage may get before it is refreshed.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(5);

    private sealed class Slot
    {
        public Reading? Last;
        public int Refreshing;

        /// <summary>1 when this process wrote to the store after <see cref="Last"/> was read (or while it was being read).</summary>
        public int Written;
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
            if (last is null || Volatile.Read(ref slot.Written) == 1 || time.GetUtcNow() - last.At > MaxAge)
            {
                Refresh(slot, store, tenant.AppId, time);
            }
        }
        return total;
    }

    /// <summary>
    /// Notes that this process wrote to <paramref name="storeName"/>: the next write to another store that counts its usage
    /// reads it again (in the background). Nothing is read now, so a write costs no second round trip.
    /// </summary>
    public void Written(string storeName)
    {
        if (_stores.TryGetValue(storeName, out var slot) && Volatile.Read(ref slot.Written) == 0)
        {
            Volatile.Write(ref slot.Written, 1);
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
            // A write from now on is not surely in this reading: it marks the slot again.
            Volatile.Write(ref slot.Written, 0);
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
