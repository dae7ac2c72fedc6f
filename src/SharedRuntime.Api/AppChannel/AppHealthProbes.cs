using System.Collections.Frozen;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using Dapr.AppCallback.Autogen.Grpc.v1;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Probes the apps of the tenants that enabled Dapr's app health check (<c>spec.enableAppHealthCheck</c>), and only
/// those: an HTTP or h2c app with <c>GET {appEndpoint}{appHealthCheckPath}</c> (2xx is healthy), a gRPC app with
/// <c>AppCallbackHealthCheck/HealthCheck</c> (OK is healthy). While an app is unhealthy its subscriptions stop (its
/// events wait in the broker), its input binding events are not delivered and calls into it are refused without
/// reaching it, as Dapr does; one successful probe brings all of it back.
/// <para>
/// One loop keeps every app's next probe in a queue ordered by time and sleeps until the first is due; it starts each
/// probe without waiting for it, so a hung app's probe (bounded by its timeout, at most
/// <see cref="AppHealthConfig.MaxProbeTimeout"/>) never delays another's. Probes go over each app's own connection,
/// not its channel: they take none of its call slots and never move its circuit breaker, nor anyone else's.
/// </para>
/// </summary>
internal sealed partial class AppHealthProbes : IHostedService, IAsyncDisposable
{
    private static readonly Google.Protobuf.WellKnownTypes.Empty EmptyMessage = new();
    private static readonly MediaTypeHeaderValue GrpcType = new("application/grpc");

    /// <summary>First probes started together when a load enables many apps' checks at once; the next ones wait <see cref="FirstProbeSpacing"/>.</summary>
    internal const int FirstProbeBurst = 500;

    /// <summary>
    /// The wait between bursts of first probes: 10,000 apps enabled at once have all had their first probe within
    /// 2 s, and their probes stay spread out that way after.
    /// </summary>
    internal static readonly TimeSpan FirstProbeSpacing = TimeSpan.FromMilliseconds(100);

    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly PriorityQueue<AppHealthState, long> _due = new();
    private readonly CancellationTokenSource _stopping = new();
    private volatile FrozenDictionary<string, AppHealthState> _states = FrozenDictionary<string, AppHealthState>.Empty;
    private CancellationTokenSource _wake = new();
    private Task _loop = Task.CompletedTask;
    private int _inFlight;

    public AppHealthProbes(RuntimeConfiguration configuration, TimeProvider time, ILogger<AppHealthProbes> logger, IMeterFactory? meterFactory = null)
    {
        _time = time;
        _logger = logger;
        Update(configuration.Current);
        configuration.Changed += Update;
        meterFactory?.Create(Metrics.RuntimeMetrics.MeterName).CreateObservableGauge("sharedruntime.app.healthy", Measure,
            description: "1 while a tenant's app passes its health probes, 0 while it is unhealthy; only for tenants that enable the app health check.");
    }

    /// <summary>Raised when an app becomes healthy or unhealthy, or a reload starts or stops probing one.</summary>
    public event Action? Changed;

    /// <summary>Probes started and not yet ended, for tests.</summary>
    internal int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Whether tenant <paramref name="appId"/>'s app may be called now: true unless it enabled the health check and
    /// its app is unhealthy. One look-up, no lock.
    /// </summary>
    public bool IsHealthy(string appId) => _states.Count == 0 || !_states.TryGetValue(appId, out var state) || state.IsHealthy;

    /// <summary>
    /// The refusal of a call into <paramref name="appId"/>'s app while it is unhealthy, or null: Dapr's answer, a
    /// 500 (gRPC INTERNAL) with ERR_DIRECT_INVOKE, "app is not in a healthy state", without calling the app.
    /// </summary>
    public DaprApiException? Refusal(string appId)
    {
        if (_states.Count == 0 || !_states.TryGetValue(appId, out var state) || state.IsHealthy)
        {
            return null;
        }
        return new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {appId}, err: app is not in a healthy state ({state.Reason})")
        {
            GrpcOverride = (int)global::Grpc.Core.StatusCode.Internal,
        };
    }

    /// <summary>The health state of <paramref name="appId"/>'s app, or null when it is not probed.</summary>
    internal AppHealthState? Find(string appId) => _states.GetValueOrDefault(appId);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = RunAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    private void Update(RuntimeSnapshot snapshot)
    {
        var changed = false;
        lock (_gate)
        {
            var previous = _states;
            var next = new Dictionary<string, AppHealthState>(StringComparer.Ordinal);
            var now = _time.GetTimestamp();
            var started = 0;
            foreach (var tenant in snapshot.Tenants.Values)
            {
                var config = tenant.Config;
                if (config.AppHealth is not { } health || config.AppEndpoint is not { } endpoint)
                {
                    continue;
                }
                var uri = new Uri(endpoint, UriKind.Absolute);
                var old = previous.GetValueOrDefault(tenant.AppId);
                if (old is not null && old.SameAs(health, uri, config.AppProtocol, config.AppChannel.AppApiToken))
                {
                    next[tenant.AppId] = old;
                    continue;
                }
                // The same app probed another way keeps what it was found to be until its next probe, due now.
                var healthy = old is not null && old.Endpoint == uri && old.Protocol == config.AppProtocol && old.IsHealthy;
                var state = new AppHealthState(tenant.AppId, health, uri, config.AppProtocol, config.AppChannel.AppApiToken, healthy);
                next[tenant.AppId] = state;
                // The first probe at once, as Dapr's; when a load starts many, at most FirstProbeBurst of them per FirstProbeSpacing.
                Schedule(state, now + Ticks(FirstProbeSpacing * (started++ / FirstProbeBurst)));
                changed |= !healthy;
                if (old is null)
                {
                    AppHealthLog.Probing(_logger, tenant.AppId, config.AppProtocol == AppProtocol.Grpc ? "AppCallbackHealthCheck/HealthCheck" : health.Path,
                        health.ProbeInterval.TotalSeconds, health.ProbeTimeout.TotalMilliseconds, health.Threshold);
                }
            }
            foreach (var (appId, old) in previous)
            {
                if (!ReferenceEquals(next.GetValueOrDefault(appId), old))
                {
                    old.Retire();
                    changed |= !old.IsHealthy && !next.ContainsKey(appId);
                }
            }
            _states = next.ToFrozenDictionary(StringComparer.Ordinal);
            WakeLocked();
        }
        if (changed)
        {
            Changed?.Invoke();
        }
    }

    private void Schedule(AppHealthState state, long due)
    {
        state.Due = due;
        _due.Enqueue(state, due);
    }

    private void WakeLocked()
    {
        var wake = _wake;
        _wake = new CancellationTokenSource();
        wake.Cancel(); // not disposed: the loop may still be linking to its token
    }

    /// <summary>
    /// The probe loop: starts every probe that is due, then sleeps until the next one is (or a reload adds one).
    /// Retired states leave the queue when they come up.
    /// </summary>
    private async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            TimeSpan wait;
            CancellationToken wake;
            lock (_gate)
            {
                var now = _time.GetTimestamp();
                while (_due.TryPeek(out var state, out var due) && due <= now)
                {
                    _due.Dequeue();
                    if (state.Retired || state.Due != due)
                    {
                        continue;
                    }
                    Schedule(state, now + Ticks(state.Config.ProbeInterval));
                    if (state.TryBeginProbe())
                    {
                        Interlocked.Increment(ref _inFlight);
                        _ = ProbeAsync(state, stopping);
                    }
                }
                wait = _due.TryPeek(out _, out var first) ? _time.GetElapsedTime(now, first) : Timeout.InfiniteTimeSpan;
                wake = _wake.Token;
            }
            using var either = CancellationTokenSource.CreateLinkedTokenSource(stopping, wake);
            try
            {
                await Task.Delay(wait, _time, either.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Woken by a reload, or stopping.
            }
        }
    }

    private long Ticks(TimeSpan interval) => (long)(interval.TotalSeconds * _time.TimestampFrequency);

    /// <summary>One probe of one app, on a pool thread of its own; never throws.</summary>
    private async Task ProbeAsync(AppHealthState state, CancellationToken stopping)
    {
        await Task.Yield();
        string? failure;
        try
        {
            failure = await SendProbeAsync(state, stopping).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            failure = $"the probe failed: {ex.Message}";
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
        if (stopping.IsCancellationRequested)
        {
            state.AbandonProbe();
            return;
        }
        switch (state.EndProbe(failure))
        {
            case true:
                AppHealthLog.Healthy(_logger, state.AppId);
                Changed?.Invoke();
                break;
            case false:
                AppHealthLog.Unhealthy(_logger, state.AppId, state.Config.Threshold, failure ?? "");
                Changed?.Invoke();
                break;
            default:
                if (failure is not null)
                {
                    AppHealthLog.ProbeFailed(_logger, state.AppId, failure);
                }
                break;
        }
    }

    /// <summary>Sends one probe; returns why it failed, or null when the app is healthy.</summary>
    private async Task<string?> SendProbeAsync(AppHealthState state, CancellationToken stopping)
    {
        using var timer = new CancellationTokenSource(state.Config.ProbeTimeout, _time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping, timer.Token);
        using var request = Request(state);
        try
        {
            using var response = await state.Invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            if (state.Protocol == AppProtocol.Grpc)
            {
                var answer = await AppCallbackCalls.ReadUnaryAsync(response, HealthCheckResponse.Parser, 1024, timeout.Token).ConfigureAwait(false);
                return answer.Code == global::Grpc.Core.StatusCode.OK ? null : $"HealthCheck answered {answer.Code}{(answer.Detail.Length > 0 ? ": " + answer.Detail : "")}";
            }
            var status = (int)response.StatusCode;
            return status is >= 200 and < 300 ? null : $"GET {state.Config.Path} answered {status}";
        }
        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
        {
            return $"no answer within {state.Config.ProbeTimeout.TotalMilliseconds}ms";
        }
        catch (HttpRequestException ex)
        {
            return $"the app could not be reached: {ex.Message}";
        }
    }

    private static HttpRequestMessage Request(AppHealthState state)
    {
        HttpRequestMessage request;
        if (state.Protocol == AppProtocol.Grpc)
        {
            // An empty message: the 5-byte gRPC prefix of a zero-length message.
            request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{state.Endpoint.OriginalString}/{AppCallbackCalls.HealthCheck}/HealthCheck", UriKind.Absolute))
            {
                Content = new ByteArrayContent(new byte[5 + EmptyMessage.CalculateSize()]),
            };
            request.Content.Headers.ContentType = GrpcType;
            request.Headers.TryAddWithoutValidation("te", "trailers");
        }
        else
        {
            request = new HttpRequestMessage(HttpMethod.Get, new Uri(state.Endpoint.OriginalString + state.Config.Path, UriKind.Absolute));
        }
        (request.Version, request.VersionPolicy) = state.Protocol is AppProtocol.H2c or AppProtocol.Grpc
            ? (HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact)
            : (HttpVersion.Version11, HttpVersionPolicy.RequestVersionOrLower);
        if (state.AppApiToken is { } token)
        {
            request.Headers.TryAddWithoutValidation("dapr-api-token", token);
        }
        return request;
    }

    private IEnumerable<Measurement<int>> Measure()
    {
        foreach (var (appId, state) in _states)
        {
            yield return new Measurement<int>(state.IsHealthy ? 1 : 0, new KeyValuePair<string, object?>("app_id", appId));
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }
        await _loop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var state in _states.Values)
            {
                state.Retire();
            }
        }
    }
}

internal static partial class AppHealthLog
{
    [LoggerMessage(2150, LogLevel.Information, "Tenant {AppId}: probing its app's health at {Probe} every {IntervalSeconds}s (timeout {TimeoutMs}ms, unhealthy after {Threshold} failures)")]
    public static partial void Probing(ILogger logger, string appId, string probe, double intervalSeconds, double timeoutMs, int threshold);

    [LoggerMessage(2151, LogLevel.Information, "Tenant {AppId}: app is healthy; its deliveries and invocations resume")]
    public static partial void Healthy(ILogger logger, string appId);

    [LoggerMessage(2152, LogLevel.Warning, "Tenant {AppId}: app is unhealthy after {Threshold} failed probes ({Reason}); its deliveries stop and invocations are refused")]
    public static partial void Unhealthy(ILogger logger, string appId, int threshold, string reason);

    [LoggerMessage(2153, LogLevel.Debug, "Tenant {AppId}: a health probe failed: {Reason}")]
    public static partial void ProbeFailed(ILogger logger, string appId, string reason);
}
