using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The app channel of every tenant that has an appEndpoint, and what a call into each tenant needs, compiled from one
/// snapshot when it applies, so that a call reads no configuration. A tenant whose endpoint, protocol and channel
/// settings did not change keeps its channel (slots, connections and breaker state) across reloads; a replaced channel
/// closes its connections once the calls on their way through it have their answers. A reload that changed a few
/// tenants updates only theirs (<see cref="RuntimeSnapshot"/>'s changes), the table keeping every other entry.
/// </summary>
internal sealed class AppChannels : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Lock _updating = new();
    private volatile LayeredTable<string, AppTarget> _targets = LayeredTable<string, AppTarget>.Empty;
    private RuntimeSnapshot? _applied;

    public AppChannels(RuntimeConfiguration configuration, TimeProvider time)
    {
        _time = time;
        Update(configuration.Current);
        configuration.Changed += Update;
    }

    /// <summary>The channel into <paramref name="appId"/>'s app, or null when the tenant does not exist or has no appEndpoint.</summary>
    public AppChannel? Find(string appId) => _targets.GetValueOrDefault(appId)?.Channel;

    /// <summary>Tenant <paramref name="appId"/> as a call into it sees it, or null when no such tenant is served.</summary>
    public AppTarget? FindTarget(string appId) => _targets.GetValueOrDefault(appId);

    private void Update(RuntimeSnapshot snapshot)
    {
        lock (_updating)
        {
            var previous = _targets;
            LayeredTable<string, AppTarget> next;
            if (_applied is { } applied && snapshot.Changes is { } changes && applied.Generation == snapshot.Generation - 1 &&
                applied.Resources.Configurations.SequenceEqual<object>(snapshot.Resources.Configurations, ReferenceEqualityComparer.Instance))
            {
                // Only the tenants the reload made or removed; the rest keep their targets as they are.
                var updates = new List<KeyValuePair<string, AppTarget?>>(changes.Updated.Count + changes.Removed.Count);
                foreach (var removed in changes.Removed)
                {
                    updates.Add(new(removed.AppId, null));
                }
                foreach (var (_, tenant) in changes.Updated)
                {
                    updates.Add(new(tenant.AppId, Target(snapshot, tenant, previous)));
                }
                next = updates.Count == 0 ? previous : previous.With(updates);
                _targets = next;
                foreach (var (appId, _) in updates)
                {
                    RetireReplaced(previous.GetValueOrDefault(appId), next.GetValueOrDefault(appId));
                }
            }
            else
            {
                next = LayeredTable<string, AppTarget>.From(
                    snapshot.Tenants.Values.Select(tenant => KeyValuePair.Create(tenant.AppId, Target(snapshot, tenant, previous))), StringComparer.Ordinal);
                _targets = next;
                foreach (var (appId, old) in previous)
                {
                    RetireReplaced(old, next.GetValueOrDefault(appId));
                }
            }
            _applied = snapshot;
        }
    }

    /// <summary><paramref name="tenant"/> as a call into it sees it, keeping its channel when its endpoint and channel settings are unchanged.</summary>
    private AppTarget Target(RuntimeSnapshot snapshot, TenantContext tenant, LayeredTable<string, AppTarget> previous)
    {
        var config = tenant.Config;
        var acl = snapshot.Resources.ConfigurationOf(config)?.AccessControl;
        AppChannel? channel = null;
        if (config.AppEndpoint is { } endpoint)
        {
            channel = previous.GetValueOrDefault(tenant.AppId)?.Channel is { } existing &&
                existing.Endpoint.OriginalString == endpoint && existing.Protocol == config.AppProtocol && existing.Config == config.AppChannel
                ? existing
                : new AppChannel(config.AppId, config.AppChannel, new Uri(endpoint, UriKind.Absolute), config.AppProtocol, _time);
        }
        return new AppTarget(tenant.AppId, channel, acl);
    }

    private static void RetireReplaced(AppTarget? old, AppTarget? now)
    {
        if (old?.Channel is { } oldChannel && !ReferenceEquals(now?.Channel, oldChannel))
        {
            oldChannel.Retire();
        }
    }

    public void Dispose()
    {
        foreach (var (_, target) in _targets)
        {
            target.Channel?.Dispose();
        }
    }
}
