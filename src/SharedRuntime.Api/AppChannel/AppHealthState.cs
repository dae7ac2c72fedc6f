using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The health of one tenant's app as its probes found it, with Dapr's rule: unhealthy from the start until a probe
/// succeeds, then unhealthy again once <see cref="AppHealthConfig.Threshold"/> probes in a row have failed. Each app
/// has its own connection for probes, so a probe never waits for, or takes, the connections its calls use.
/// </summary>
internal sealed class AppHealthState : IDisposable
{
    private readonly HttpMessageInvoker _invoker;
    private readonly Lock _gate = new();
    private int _failures;
    private bool _probing;
    private bool _retired;
    private bool _disposed;

    public AppHealthState(string appId, AppHealthConfig config, Uri endpoint, AppProtocol protocol, string? appApiToken, bool healthy)
    {
        AppId = appId;
        Config = config;
        Endpoint = endpoint;
        Protocol = protocol;
        AppApiToken = appApiToken;
        _failures = healthy ? 0 : config.Threshold;
        Reason = healthy ? null : "not probed yet";
        var handler = AppChannel.ForwardingHandler(1);
        handler.ConnectTimeout = config.ProbeTimeout;
        handler.PooledConnectionIdleTimeout = config.ProbeInterval + config.ProbeInterval;
        _invoker = new HttpMessageInvoker(handler, disposeHandler: true);
    }

    public string AppId { get; }
    public AppHealthConfig Config { get; }
    public Uri Endpoint { get; }
    public AppProtocol Protocol { get; }
    public string? AppApiToken { get; }

    /// <summary>Whether the app is healthy now: read on every call into it, without a lock.</summary>
    public bool IsHealthy => Volatile.Read(ref _failures) < Config.Threshold;

    /// <summary>Why the last probe failed, or null when it succeeded.</summary>
    public string? Reason { get; private set; }

    /// <summary>When the next probe is due, as a <see cref="TimeProvider"/> timestamp; kept by the probe loop.</summary>
    internal long Due { get; set; }

    /// <summary>Whether this state probes the same app the same way as the given settings would.</summary>
    public bool SameAs(AppHealthConfig config, Uri endpoint, AppProtocol protocol, string? appApiToken) =>
        Config == config && Endpoint == endpoint && Protocol == protocol && AppApiToken == appApiToken;

    /// <summary>
    /// Marks a probe as started; false when this state was retired (nothing more is sent through it) or its last
    /// probe has not ended yet (a probe is bounded by its timeout, shorter than the interval, so this is rare).
    /// </summary>
    public bool TryBeginProbe()
    {
        lock (_gate)
        {
            if (_retired || _probing)
            {
                return false;
            }
            _probing = true;
            return true;
        }
    }

    /// <summary>A probe's result; returns the health after it when it changed, else null.</summary>
    public bool? EndProbe(string? failure)
    {
        lock (_gate)
        {
            _probing = false;
            var wasHealthy = IsHealthy;
            Reason = failure;
            if (failure is null)
            {
                Volatile.Write(ref _failures, 0);
            }
            else if (_failures < Config.Threshold)
            {
                Volatile.Write(ref _failures, _failures + 1);
            }
            if (_retired)
            {
                DisposeInvoker();
                return null;
            }
            return IsHealthy == wasHealthy ? null : IsHealthy;
        }
    }

    /// <summary>A probe ended by the runtime stopping: it says nothing about the app.</summary>
    public void AbandonProbe()
    {
        lock (_gate)
        {
            _probing = false;
            if (_retired)
            {
                DisposeInvoker();
            }
        }
    }

    public HttpMessageInvoker Invoker => _invoker;

    /// <summary>Stops probing: the probe's connection closes now, or once the probe on its way ends.</summary>
    public void Retire()
    {
        lock (_gate)
        {
            _retired = true;
            if (!_probing)
            {
                DisposeInvoker();
            }
        }
    }

    public bool Retired
    {
        get
        {
            lock (_gate)
            {
                return _retired;
            }
        }
    }

    public void Dispose() => Retire();

    private void DisposeInvoker()
    {
        if (!_disposed)
        {
            _disposed = true;
            _invoker.Dispose();
        }
    }
}
