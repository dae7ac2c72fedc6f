using System.Collections.Frozen;
using System.Net;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The app channel of every tenant that has an appEndpoint, kept in step with the configuration: a tenant whose
/// endpoint and channel settings did not change keeps its channel (slots and breaker state) across reloads.
/// </summary>
internal sealed class AppChannels : IDisposable
{
    private readonly TimeProvider _time;
    private volatile FrozenDictionary<string, AppChannel> _channels = FrozenDictionary<string, AppChannel>.Empty;

    public AppChannels(RuntimeConfiguration configuration, TimeProvider time)
    {
        _time = time;
        Invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ActivityHeadersPropagator = null,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            EnableMultipleHttp2Connections = true,
        }, disposeHandler: true);
        Update(configuration.Current);
        configuration.Changed += Update;
    }

    /// <summary>One connection pool for every app, like a proxy's.</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>The channel into <paramref name="appId"/>'s app, or null when the tenant does not exist or has no appEndpoint.</summary>
    public AppChannel? Find(string appId) => _channels.GetValueOrDefault(appId);

    private void Update(RuntimeSnapshot snapshot)
    {
        var previous = _channels;
        var next = new Dictionary<string, AppChannel>(StringComparer.Ordinal);
        foreach (var tenant in snapshot.Tenants.Values)
        {
            if (tenant.Config.AppEndpoint is not { } endpoint)
            {
                continue;
            }
            if (previous.TryGetValue(tenant.AppId, out var existing) &&
                existing.Endpoint.OriginalString == endpoint && existing.Config == tenant.Config.AppChannel)
            {
                next[tenant.AppId] = existing;
                continue;
            }
            next[tenant.AppId] = new AppChannel(tenant.AppId, tenant.Config.AppChannel, new Uri(endpoint, UriKind.Absolute), Invoker, _time);
        }
        _channels = next.ToFrozenDictionary(StringComparer.Ordinal);
    }

    public void Dispose() => Invoker.Dispose();
}
