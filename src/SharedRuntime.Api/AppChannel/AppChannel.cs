using System.Net;
using SharedRuntime.Admission;
using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The way into one tenant's app: its endpoint and protocol, its own pool of connections (at most one per call slot,
/// so no other tenant's calls share or exhaust them), a bound on calls in flight into it (invocations and deliveries
/// together, shared fairly between callers), a timeout per call and a circuit breaker that opens after consecutive
/// transport failures or timeouts. An app that hangs fills only these slots and connections; nobody else's.
/// </summary>
internal sealed partial class AppChannel : IDisposable
{
    private readonly HttpMessageInvoker _invoker;
    private readonly CircuitBreaker? _breaker;
    private readonly Version _version;
    private readonly HttpVersionPolicy _versionPolicy;
    private readonly TimeProvider _time;
    private int _inFlight;
    private volatile bool _retired;
    private int _disposed;

    internal AppChannel(string appId, AppChannelConfig config, Uri endpoint, AppProtocol protocol, TimeProvider time)
        : this(appId, config, endpoint, protocol, CreateInvoker(config), time)
    {
    }

    /// <summary>A channel that sends through <paramref name="invoker"/>, which it disposes when it is retired.</summary>
    internal AppChannel(string appId, AppChannelConfig config, Uri endpoint, AppProtocol protocol, HttpMessageInvoker invoker, TimeProvider time)
    {
        AppId = appId;
        _time = time;
        Endpoint = endpoint;
        Config = config;
        Protocol = protocol;
        (_version, _versionPolicy) = protocol is AppProtocol.H2c or AppProtocol.Grpc
            ? (HttpVersion.Version20, HttpVersionPolicy.RequestVersionExact) // h2c and gRPC: HTTP/2 by prior knowledge, no upgrade
            : (HttpVersion.Version11, HttpVersionPolicy.RequestVersionOrLower);
        _invoker = invoker;
        Calls = new FairQueue(Config.MaxConcurrency, Config.MaxQueue);
        if (Config.BreakAfterFailures > 0)
        {
            _breaker = new CircuitBreaker(
                new CircuitBreakerPolicyConfig(1, TimeSpan.Zero, Config.BreakDuration, TripExpression.Parse($"consecutiveFailures >= {Config.BreakAfterFailures}")),
                time);
        }
    }

    /// <summary>
    /// The channel's own pool of connections to its app: never more connections than calls the channel lets in at
    /// once, so one tenant's calls never wait for, or take, another tenant's connections to the same address.
    /// </summary>
    private static HttpMessageInvoker CreateInvoker(AppChannelConfig config)
    {
        var handler = ForwardingHandler(config.MaxConcurrency);
        handler.EnableMultipleHttp2Connections = true; // another HTTP/2 connection only once the app's stream limit is reached
        return new(handler, disposeHandler: true);
    }

    /// <summary>
    /// A pool of at most <paramref name="maxConnections"/> connections that forwards as it is told: no proxy, no
    /// redirects, no decompression, no cookies, no trace headers of its own (the runtime sets <c>traceparent</c>).
    /// </summary>
    internal static SocketsHttpHandler ForwardingHandler(int maxConnections) => new()
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
        ActivityHeadersPropagator = null,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
        MaxConnectionsPerServer = maxConnections,
    };

    public string AppId { get; }

    /// <summary>The app's base URL, without a trailing slash.</summary>
    public Uri Endpoint { get; }

    public AppChannelConfig Config { get; }

    public AppProtocol Protocol { get; }

    /// <summary>
    /// Calls in flight into the app. Waiting calls stand in lines served in turn: one per calling app (its
    /// invocations, at most <c>maxQueue</c>), one per subscription (its deliveries), so no caller crowds out another.
    /// </summary>
    public FairQueue Calls { get; }

    /// <summary>The line of one subscription's deliveries: never an app-id, which has no '/'.</summary>
    public static string DeliveryLine(string pubsubName, string topic) => $"pubsub/{pubsubName}/{topic}";

    public CircuitState BreakerState => _breaker?.State ?? CircuitState.Closed;

    /// <summary>
    /// On a request sent through a channel: the longest wait for each further piece of the app's answer once its head
    /// came (the channel's timeout), for whoever copies the answer's body on.
    /// </summary>
    private static readonly HttpRequestOptionsKey<TimeSpan> ReadTimeoutKey = new("sharedruntime.app-read-timeout");

    /// <summary>The longest pause within the body of an answer a channel received (its timeout); infinite for any other answer.</summary>
    public static TimeSpan ReadTimeoutOf(HttpResponseMessage response) =>
        response.RequestMessage?.Options.TryGetValue(ReadTimeoutKey, out var timeout) == true ? timeout : Timeout.InfiniteTimeSpan;

    /// <summary>
    /// Sends one request to the app and classifies its answer. Throws <see cref="CircuitOpenException"/> without
    /// calling when the app's breaker is open, <see cref="TimeoutException"/> when the app does not answer in time,
    /// <see cref="HttpRequestException"/> when it cannot be reached, and <see cref="CallerFaultException"/> when the
    /// call failed because of the request itself. Only the app's own failures (connection refused or reset, no answer
    /// in time) count against its channel breaker; a call
    /// whose caller gave up or sent a request that could not be forwarded counts neither way.
    /// </summary>
    public async ValueTask<AppCallResult> SendAsync(HttpRequestMessage request, Func<HttpResponseMessage, CancellationToken, ValueTask<AppCallResult>> classify, CancellationToken cancellationToken)
    {
        long generation = 0;
        if (_breaker is not null && !_breaker.TryAcquire(out generation))
        {
            request.Dispose();
            throw new CircuitOpenException($"app {AppId}");
        }
        request.Version = _version;
        request.VersionPolicy = _versionPolicy;
        request.Options.Set(ReadTimeoutKey, Config.Timeout);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Config.Timeout);
        Interlocked.Increment(ref _inFlight);
        try
        {
            var response = await _invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            var result = await classify(response, timeout.Token).ConfigureAwait(false);
            _breaker?.Record(generation, success: true);
            return result;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            _breaker?.Abandon(generation); // the caller gave up (or its own pipeline's timeout ended the call)
            throw;
        }
        catch (Exception ex) when (CallerFault(request, ex) is { } problem)
        {
            _breaker?.Abandon(generation);
            throw new CallerFaultException(problem, timedOut: ex is OperationCanceledException, ex);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            _breaker?.Record(generation, success: false);
            throw new TimeoutException($"app {AppId} did not answer within {Config.Timeout.TotalSeconds:0.###}s");
        }
        catch (HttpRequestException)
        {
            _breaker?.Record(generation, success: false);
            throw;
        }
        catch (OperationCanceledException)
        {
            _breaker?.Abandon(generation);
            throw;
        }
        catch (ObjectDisposedException ex) when (_retired)
        {
            // Replaced by a reload while this call was on its way: the call was never made.
            _breaker?.Abandon(generation);
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"app {AppId}: its channel was reconfigured while the call was made", ex);
        }
        finally
        {
            if (Interlocked.Decrement(ref _inFlight) == 0 && _retired)
            {
                Dispose();
            }
        }
    }

    /// <summary>
    /// Called once a reload has replaced this channel: its connections are closed once the calls being sent through
    /// it have their answers (a response body still being read finishes on its connection).
    /// </summary>
    public void Retire()
    {
        _retired = true;
        if (Volatile.Read(ref _inFlight) == 0)
        {
            Dispose();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _invoker.Dispose();
            _connections?.Dispose();
        }
    }

    /// <summary>
    /// Why a failed call is its caller's fault, or null when it is the app's: reading the caller's streamed body
    /// failed or was still waiting on the caller, or the client refused the request before sending it (an HTTP error
    /// with no transport failure behind it).
    /// </summary>
    private static string? CallerFault(HttpRequestMessage request, Exception exception)
    {
        if (CallerBodyStream.BlamesCaller(request))
        {
            return exception is OperationCanceledException
                ? "the request body did not arrive in time"
                : "the request body could not be read to its end (the caller aborted it or sent less than it announced)";
        }
        if (exception is HttpRequestException { HttpRequestError: HttpRequestError.Unknown } http && !HasTransportCause(http))
        {
            return $"the request cannot be sent to the app: {http.Message}";
        }
        return null;
    }

    private static bool HasTransportCause(Exception exception)
    {
        for (var inner = exception.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is IOException or System.Net.Sockets.SocketException or TimeoutException or ObjectDisposedException)
            {
                return true;
            }
        }
        return false;
    }
}

/// <summary>
/// A call into an app failed because of the request it was given: the caller's 4xx (408 when its body did not arrive
/// in time, else 400), never a failure of the app.
/// </summary>
internal sealed class CallerFaultException(string problem, bool timedOut, Exception? inner = null) : Exception(problem, inner)
{
    public bool TimedOut { get; } = timedOut;
}

/// <summary>The app has all its call slots taken and the caller's line of waiting calls is full.</summary>
internal sealed class AppBusyException(string appId, string callerAppId, int maxConcurrency, int maxQueue)
    : Exception($"app {appId} has {maxConcurrency} calls in flight and {maxQueue} calls of {callerAppId} waiting, its app channel limit");
