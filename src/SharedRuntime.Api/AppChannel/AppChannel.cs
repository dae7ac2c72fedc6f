using SharedRuntime.Admission;
using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>
/// The way into one tenant's app: its endpoint, a bound on calls in flight into it (invocations and deliveries
/// together, shared fairly between callers), a timeout per call and a circuit breaker that opens after consecutive transport failures or timeouts.
/// An app that hangs fills only these slots; nobody else's.
/// </summary>
public sealed class AppChannel
{
    private readonly HttpMessageInvoker _invoker;
    private readonly CircuitBreaker? _breaker;

    internal AppChannel(string appId, AppChannelConfig config, Uri endpoint, HttpMessageInvoker invoker, TimeProvider time)
    {
        AppId = appId;
        Endpoint = endpoint;
        Config = config;
        _invoker = invoker;
        Calls = new FairQueue(Config.MaxConcurrency, Config.MaxQueue);
        if (Config.BreakAfterFailures > 0)
        {
            _breaker = new CircuitBreaker(
                new CircuitBreakerPolicyConfig(1, TimeSpan.Zero, Config.BreakDuration, TripExpression.Parse($"consecutiveFailures >= {Config.BreakAfterFailures}")),
                time);
        }
    }

    public string AppId { get; }

    /// <summary>The app's base URL, without a trailing slash.</summary>
    public Uri Endpoint { get; }

    public AppChannelConfig Config { get; }

    /// <summary>
    /// Calls in flight into the app. Waiting calls stand in lines served in turn: one per calling app (its
    /// invocations, at most <c>maxQueue</c>), one per subscription (its deliveries), so no caller crowds out another.
    /// </summary>
    public FairQueue Calls { get; }

    /// <summary>The line of one subscription's deliveries: never an app-id, which has no '/'.</summary>
    public static string DeliveryLine(string pubsubName, string topic) => $"pubsub/{pubsubName}/{topic}";

    public CircuitState BreakerState => _breaker?.State ?? CircuitState.Closed;

    /// <summary>
    /// Sends one request to the app and classifies its answer. Throws <see cref="CircuitOpenException"/> without
    /// calling when the app's breaker is open, <see cref="TimeoutException"/> when the app does not answer in time,
    /// and <see cref="HttpRequestException"/> when it cannot be reached.
    /// </summary>
    public async ValueTask<AppCallResult> SendAsync(HttpRequestMessage request, Func<HttpResponseMessage, CancellationToken, ValueTask<AppCallResult>> classify, CancellationToken cancellationToken)
    {
        long generation = 0;
        if (_breaker is not null && !_breaker.TryAcquire(out generation))
        {
            request.Dispose();
            throw new CircuitOpenException($"app {AppId}");
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Config.Timeout);
        try
        {
            var response = await _invoker.SendAsync(request, timeout.Token).ConfigureAwait(false);
            var result = await classify(response, timeout.Token).ConfigureAwait(false);
            _breaker?.Record(generation, success: true);
            return result;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
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
    }
}

/// <summary>The app has all its call slots taken and the caller's line of waiting calls is full.</summary>
public sealed class AppBusyException(string appId, string callerAppId, int maxConcurrency, int maxQueue)
    : Exception($"app {appId} has {maxConcurrency} calls in flight and {maxQueue} calls of {callerAppId} waiting, its app channel limit");
