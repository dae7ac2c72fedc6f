using System.Collections.Concurrent;
using Polly;
using Polly.Retry;
using Polly.Timeout;
using SharedRuntime.Configuration;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Polly pipelines built from the Dapr <c>Resiliency</c> resources for calls into apps: one per calling tenant and
/// target app (<see cref="ForApp"/>) and per subscribed app and pub/sub component (<see cref="ForInbound"/>), made on
/// first use. A reload keeps a pipeline (and its breaker state) when the tenant, the target and the policies that
/// govern the pair are unchanged, and drops it otherwise. Only a tenant and a target that exist in the configuration
/// get a pipeline cached, so the cache is bounded by the configuration, never by the names callers make up. Calls into
/// components take their tenant's pipeline from its compiled routes (<see cref="OutboundPipelines"/>).
/// </summary>
internal sealed class ResiliencyPolicies
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
        _generation = new Generation(configuration.Current, null);
        configuration.Changed += snapshot => _generation = new Generation(snapshot, _generation);
    }

    /// <summary>The pipeline for calls by <paramref name="callerAppId"/> to the app <paramref name="targetAppId"/>; none when that app is not served here.</summary>
    public ResiliencePipeline<AppCallResult> ForApp(string callerAppId, string targetAppId) =>
        Get(new Key(callerAppId, Kind.App, targetAppId));

    /// <summary>The pipeline for deliveries from component <paramref name="pubsubName"/> to <paramref name="appId"/> (the component's inbound policy).</summary>
    public ResiliencePipeline<AppCallResult> ForInbound(string appId, string pubsubName) =>
        Get(new Key(appId, Kind.Inbound, pubsubName));

    /// <summary>
    /// Whether an exception from a component is worth retrying and counts against its breaker: not a refusal of the
    /// request itself (etag conflicts, Dapr errors answered to the app) and not an open circuit.
    /// </summary>
    internal static bool IsComponentFailure(Exception exception) =>
        exception is not (BuildingBlocks.DaprApiException or Components.StateETagMismatchException or Components.StateETagInvalidException or Components.StateQuotaExceededException or CircuitOpenException or ArgumentException
            or Admission.BackendUnavailableException or Admission.FairQueueFullException);

    private ResiliencePipeline<AppCallResult> Get(Key key)
    {
        var generation = _generation;
        if (generation.Resiliencies.Count == 0)
        {
            return ResiliencePipeline<AppCallResult>.Empty;
        }
        if (!generation.Exists(key))
        {
            return ResiliencePipeline<AppCallResult>.Empty; // a made-up name: nothing to protect, and nothing cached for it
        }
        return generation.Pipelines.GetOrAdd(key, static (key, state) =>
            state.generation.PolicyFor(key) is { } policy
                ? new Built(policy, state.policies.Build(policy.Resiliency, policy.Refs, $"{key.Kind.ToString().ToLowerInvariant()} {key.Target} for {key.AppId}"))
                : new Built(null, ResiliencePipeline<AppCallResult>.Empty),
            (generation, policies: this)).Pipeline;
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
        if (BreakerOf(resiliency, refs, _time) is { } breaker)
        {
            builder.AddStrategy(_ => new CircuitBreakerStrategy(breaker, target));
        }
        return AddTimeout(builder, resiliency, refs).Build();
    }

    internal static RetryPolicyConfig? RetryOf(ResiliencyConfig resiliency, PolicyRefs refs) =>
        refs.Retry is { } name && resiliency.Retries[name] is { MaxRetries: not 0 } retry ? retry : null;

    /// <summary>A new breaker per pipeline: its state belongs to one tenant and target.</summary>
    internal static CircuitBreaker? BreakerOf(ResiliencyConfig resiliency, PolicyRefs refs, TimeProvider time) =>
        refs.CircuitBreaker is { } name ? new CircuitBreaker(resiliency.CircuitBreakers[name], time) : null;

    internal static TOptions WithBackoff<TOptions, T>(TOptions options, RetryPolicyConfig retry)
        where TOptions : RetryStrategyOptions<T>
    {
        options.BackoffType = retry.Policy == RetryBackoff.Constant ? DelayBackoffType.Constant : DelayBackoffType.Exponential;
        options.UseJitter = retry.Policy == RetryBackoff.Exponential;
        options.Delay = retry.Duration;
        options.MaxDelay = retry.MaxInterval;
        options.MaxRetryAttempts = retry.MaxRetries < 0 ? int.MaxValue : retry.MaxRetries;
        return options;
    }

    internal static TBuilder AddTimeout<TBuilder>(TBuilder builder, ResiliencyConfig resiliency, PolicyRefs refs)
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

    private enum Kind { App, Inbound }

    private readonly record struct Key(string AppId, Kind Kind, string Target);

    /// <summary>A pipeline and the policies it was built from (none for <see cref="ResiliencePipeline{T}.Empty"/>).</summary>
    private sealed record Built(OutboundPolicy? Policy, ResiliencePipeline<AppCallResult> Pipeline);

    /// <summary>The pipelines of one configuration snapshot, seeded with the previous snapshot's that are still valid.</summary>
    private sealed class Generation
    {
        public Generation(RuntimeSnapshot snapshot, Generation? previous)
        {
            Snapshot = snapshot;
            Resiliencies = [.. snapshot.Resources.Resiliencies.OrderBy(r => r.Name, StringComparer.Ordinal)];
            if (previous is null || Resiliencies.Count == 0)
            {
                return;
            }
            foreach (var (key, built) in previous.Pipelines)
            {
                if (Exists(key) && SameTenant(previous.Snapshot, key.AppId) && OutboundPolicy.SameAs(PolicyFor(key), built.Policy))
                {
                    Pipelines[key] = built;
                }
            }
        }

        public RuntimeSnapshot Snapshot { get; }

        public List<ResiliencyConfig> Resiliencies { get; }

        public ConcurrentDictionary<Key, Built> Pipelines { get; } = new();

        public bool Exists(Key key) =>
            Snapshot.Tenants.TryGetValue(key.AppId, out var tenant) &&
            (key.Kind == Kind.App ? Snapshot.Tenants.ContainsKey(key.Target) : Snapshot.Components.ContainsKey(ResourceNamespace.Key(key.Target, tenant.Namespace)));

        /// <summary>
        /// The policies of the caller's namespace for the key. A target app of the caller's namespace is named by its
        /// app-id in <c>targets.apps</c>, one of another namespace by <c>app-id.namespace</c>.
        /// </summary>
        public OutboundPolicy? PolicyFor(Key key)
        {
            if (!Snapshot.Tenants.TryGetValue(key.AppId, out var tenant))
            {
                return null;
            }
            if (key.Kind != Kind.App)
            {
                return OutboundPolicy.Find(Resiliencies, tenant.Config, r => r.Components.GetValueOrDefault(key.Target)?.Inbound);
            }
            var target = Snapshot.Tenants.TryGetValue(key.Target, out var app) && ResourceNamespace.Same(app.Namespace, tenant.Namespace) ? app.Config.AppId : key.Target;
            return OutboundPolicy.Find(Resiliencies, tenant.Config, r => r.Apps.GetValueOrDefault(target));
        }

        /// <summary>The tenant is the one it was (not changed since <paramref name="before"/>): a changed tenant starts afresh.</summary>
        private bool SameTenant(RuntimeSnapshot before, string appId) =>
            before.Tenants.TryGetValue(appId, out var then) && Snapshot.Tenants.TryGetValue(appId, out var now) && ReferenceEquals(then.Admission, now.Admission);
    }

    /// <summary>How many pipelines the current configuration holds (for tests: it never grows with made-up names).</summary>
    internal int CachedPipelines => _generation.Pipelines.Count;
}
