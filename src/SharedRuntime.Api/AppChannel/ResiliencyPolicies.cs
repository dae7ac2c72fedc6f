using System.Collections.Concurrent;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Polly pipelines built from the Dapr <c>Resiliency</c> resources, one per calling tenant and target, made on first
/// use and rebuilt (breaker state included) whenever the configuration changes. Only a tenant and a target that exist
/// in the configuration get a pipeline cached, so the cache is bounded by the configuration, never by the names
/// callers make up.
/// </summary>
public sealed class ResiliencyPolicies
{
    /// <summary>Set on a call whose request body was streamed: it cannot be sent twice, so it is not retried.</summary>
    public static readonly ResiliencePropertyKey<bool> Streamed = new("sharedruntime.streamed");

    /// <summary>The caller's streamed body, so that a timeout while the caller trickles it is not blamed on the app.</summary>
    internal static readonly ResiliencePropertyKey<CallerBodyStream?> CallerBody = new("sharedruntime.caller-body");

    private readonly TimeProvider _time;
    private volatile Generation _generation;

    public ResiliencyPolicies(RuntimeConfiguration configuration, TimeProvider time)
    {
        _time = time;
        _generation = new Generation(configuration.Current);
        configuration.Changed += snapshot => _generation = new Generation(snapshot);
    }

    /// <summary>The pipeline for calls by <paramref name="callerAppId"/> to the app <paramref name="targetAppId"/>; none when that app is not served here.</summary>
    public ResiliencePipeline<AppCallResult> ForApp(string callerAppId, string targetAppId) =>
        Get(callerAppId, "app", targetAppId, static (s, name) => s.Tenants.ContainsKey(name), static (r, name) => r.Apps.GetValueOrDefault(name));

    /// <summary>The pipeline for deliveries from component <paramref name="pubsubName"/> to <paramref name="appId"/> (the component's inbound policy).</summary>
    public ResiliencePipeline<AppCallResult> ForInbound(string appId, string pubsubName) =>
        Get(appId, "inbound", pubsubName, static (s, name) => s.Components.ContainsKey(name), static (r, name) => r.Components.GetValueOrDefault(name)?.Inbound);

    /// <summary>The pipeline for <paramref name="appId"/>'s calls into component <paramref name="componentName"/> (its outbound policy).</summary>
    public ResiliencePipeline ForOutbound(string appId, string componentName)
    {
        var generation = _generation;
        if (generation.Snapshot.Resources.Resiliencies.Count == 0)
        {
            return ResiliencePipeline.Empty; // the common case: no lookup on the request path
        }
        if (!generation.Snapshot.Tenants.ContainsKey(appId) || !generation.Snapshot.Components.ContainsKey(componentName))
        {
            return ResiliencePipeline.Empty; // a made-up name: nothing to protect, and nothing cached for it
        }
        return generation.Outbound.GetOrAdd((appId, componentName), key =>
            Find(generation.Snapshot, key.AppId, r => r.Components.GetValueOrDefault(key.Component)?.Outbound) is var (resiliency, refs)
                ? BuildOutbound(resiliency, refs, $"component {key.Component} for {key.AppId}")
                : ResiliencePipeline.Empty);
    }

    /// <summary>
    /// Whether an exception from a component is worth retrying and counts against its breaker: not a refusal of the
    /// request itself (etag conflicts, Dapr errors answered to the app) and not an open circuit.
    /// </summary>
    internal static bool IsComponentFailure(Exception exception) =>
        exception is not (BuildingBlocks.DaprApiException or Components.StateETagMismatchException or Components.StateETagInvalidException or Components.StateQuotaExceededException or CircuitOpenException or ArgumentException
            or Admission.BackendUnavailableException or Admission.FairQueueFullException);

    private ResiliencePipeline<AppCallResult> Get(string appId, string kind, string target, Func<RuntimeSnapshot, string, bool> exists, Func<ResiliencyConfig, string, PolicyRefs?> select)
    {
        var generation = _generation;
        if (generation.Snapshot.Resources.Resiliencies.Count == 0)
        {
            return ResiliencePipeline<AppCallResult>.Empty;
        }
        if (!generation.Snapshot.Tenants.ContainsKey(appId) || !exists(generation.Snapshot, target))
        {
            return ResiliencePipeline<AppCallResult>.Empty; // a made-up name: nothing to protect, and nothing cached for it
        }
        return generation.Pipelines.GetOrAdd((appId, kind, target), key =>
            Find(generation.Snapshot, key.AppId, r => select(r, key.Target)) is var (resiliency, refs)
                ? Build(resiliency, refs, $"{key.Kind} {key.Target} for {key.AppId}")
                : ResiliencePipeline<AppCallResult>.Empty);
    }

    /// <summary>The first Resiliency resource (by name) that governs <paramref name="appId"/> and names policies for the target.</summary>
    private static (ResiliencyConfig Resiliency, PolicyRefs Refs)? Find(RuntimeSnapshot snapshot, string appId, Func<ResiliencyConfig, PolicyRefs?> select)
    {
        foreach (var resiliency in snapshot.Resources.Resiliencies.OrderBy(r => r.Name, StringComparer.Ordinal))
        {
            if (resiliency.AppliesTo(appId) && select(resiliency) is { } refs)
            {
                return (resiliency, refs);
            }
        }
        return null;
    }

    private ResiliencePipeline<AppCallResult> Build(ResiliencyConfig resiliency, PolicyRefs refs, string target)
    {
        var builder = new ResiliencePipelineBuilder<AppCallResult> { TimeProvider = _time, Name = target };
        if (RetryOf(resiliency, refs) is { } retry)
        {
            builder.AddRetry(WithBackoff<RetryStrategyOptions<AppCallResult>, AppCallResult>(new RetryStrategyOptions<AppCallResult>
            {
                ShouldHandle = args => ValueTask.FromResult(ShouldRetry(args.Outcome, args.Context, retry)),
            }, retry));
        }
        if (BreakerOf(resiliency, refs) is { } breaker)
        {
            builder.AddStrategy(_ => new CircuitBreakerStrategy(breaker, target));
        }
        return AddTimeout(builder, resiliency, refs).Build();
    }

    private ResiliencePipeline BuildOutbound(ResiliencyConfig resiliency, PolicyRefs refs, string target)
    {
        var builder = new ResiliencePipelineBuilder { TimeProvider = _time, Name = target };
        if (RetryOf(resiliency, refs) is { } retry)
        {
            builder.AddRetry(WithBackoff<RetryStrategyOptions, object>(new RetryStrategyOptions
            {
                ShouldHandle = args => ValueTask.FromResult(args.Outcome.Exception is { } ex &&
                    !(ex is OperationCanceledException && args.Context.CancellationToken.IsCancellationRequested) && IsComponentFailure(ex)),
            }, retry));
        }
        if (BreakerOf(resiliency, refs) is { } breaker)
        {
            builder.AddStrategy(_ => new ComponentCircuitBreakerStrategy(breaker, target));
        }
        return AddTimeout(builder, resiliency, refs).Build();
    }

    private static RetryPolicyConfig? RetryOf(ResiliencyConfig resiliency, PolicyRefs refs) =>
        refs.Retry is { } name && resiliency.Retries[name] is { MaxRetries: not 0 } retry ? retry : null;

    /// <summary>A new breaker per pipeline: its state belongs to one tenant and target.</summary>
    private CircuitBreaker? BreakerOf(ResiliencyConfig resiliency, PolicyRefs refs) =>
        refs.CircuitBreaker is { } name ? new CircuitBreaker(resiliency.CircuitBreakers[name], _time) : null;

    private static TOptions WithBackoff<TOptions, T>(TOptions options, RetryPolicyConfig retry)
        where TOptions : RetryStrategyOptions<T>
    {
        options.BackoffType = retry.Policy == RetryBackoff.Constant ? DelayBackoffType.Constant : DelayBackoffType.Exponential;
        options.UseJitter = retry.Policy == RetryBackoff.Exponential;
        options.Delay = retry.Duration;
        options.MaxDelay = retry.MaxInterval;
        options.MaxRetryAttempts = retry.MaxRetries < 0 ? int.MaxValue : retry.MaxRetries;
        return options;
    }

    private static TBuilder AddTimeout<TBuilder>(TBuilder builder, ResiliencyConfig resiliency, PolicyRefs refs)
        where TBuilder : ResiliencePipelineBuilderBase =>
        refs.Timeout is { } name ? builder.AddTimeout(new TimeoutStrategyOptions { Timeout = resiliency.Timeouts[name] }) : builder;

    private static bool ShouldRetry(Outcome<AppCallResult> outcome, ResilienceContext context, RetryPolicyConfig retry)
    {
        if (context.Properties.GetValue(Streamed, false))
        {
            return false;
        }
        return AppCallVerdicts.Of(outcome, context) == AppCallVerdict.AppFailure && outcome switch
        {
            { Exception: not null } => true,
            { Result: { Failed: true } result } => retry.HttpStatusCodes is null || result.StatusCode == 0 || retry.HttpStatusCodes.Contains(result.StatusCode),
            _ => false,
        };
    }

    private sealed class Generation(RuntimeSnapshot snapshot)
    {
        public RuntimeSnapshot Snapshot { get; } = snapshot;

        public ConcurrentDictionary<(string AppId, string Kind, string Target), ResiliencePipeline<AppCallResult>> Pipelines { get; } = new();

        public ConcurrentDictionary<(string AppId, string Component), ResiliencePipeline> Outbound { get; } = new();
    }

    /// <summary>How many pipelines the current configuration holds (for tests: it never grows with made-up names).</summary>
    internal int CachedPipelines => _generation.Pipelines.Count + _generation.Outbound.Count;
}
