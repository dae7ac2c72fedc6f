using System.Collections.Frozen;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The app channel of every tenant that has an appEndpoint, and what a call into each tenant needs, compiled from one
/// snapshot when it applies, so that a call reads no configuration. A tenant whose endpoint, protocol and channel
/// settings did not change keeps its channel (slots, connections and breaker state) across reloads; a replaced channel
/// closes its connections once the calls on their way through it have their answers.
/// </summary>
internal sealed class AppChannels : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Lock _updating = new();
    private volatile FrozenDictionary<string, AppTarget> _targets = FrozenDictionary<string, AppTarget>.Empty;

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
            var next = new Dictionary<string, AppTarget>(StringComparer.Ordinal);
            foreach (var tenant in snapshot.Tenants.Values)
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
                next[tenant.AppId] = new AppTarget(tenant.AppId, channel, acl);
            }
            _targets = next.ToFrozenDictionary(StringComparer.Ordinal);
            foreach (var (appId, old) in previous)
            {
                if (old.Channel is { } oldChannel && !ReferenceEquals(next.GetValueOrDefault(appId)?.Channel, oldChannel))
                {
                    oldChannel.Retire();
                }
            }
        }
    }

    public void Dispose()
    {
        foreach (var target in _targets.Values)
        {
            target.Channel?.Dispose();
        }
    }
}
