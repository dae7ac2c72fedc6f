using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Diagnostics;

/// <summary>How the runtime traces: whether spans are exported at all, and the sampling rate of a tenant whose Configuration sets none.</summary>
internal sealed record TracingOptions(bool Exporting, double DefaultSamplingRate)
{
    public static TracingOptions Off { get; } = new(false, 0);
}

/// <summary>
/// Spans of the runtime's work, with attribute <c>app_id</c>: one per API call (server), per invocation of an app and
/// per event delivered to an app (client). Sampling is the tenant's: its Configuration's <c>tracing.samplingRate</c>
/// (else the runtime's default) decides a trace the call starts; a call that carries a W3C <c>traceparent</c> follows
/// its sampled flag, as Dapr's parent-based sampler does, unless the rate is 0, which traces nothing. Without an
/// exporter, or for a tenant whose rate is 0, nothing is started and nothing allocated.
/// </summary>
internal sealed class RuntimeTracing(TracingOptions options, RuntimeConfiguration configuration) : IDisposable
{
    public const string SourceName = "SharedRuntime";
    public const string AppIdTag = "app_id";

    private readonly ActivitySource _source = new(SourceName);

    /// <summary>The current span's <c>traceparent</c> when it is one of the runtime's (an API call's), else null.</summary>
    public static string? CurrentTraceParent() =>
        Activity.Current is { Source.Name: SourceName, IdFormat: ActivityIdFormat.W3C } current ? current.Id : null;

    /// <summary>The span of an API call the tenant made, or null when it is not traced.</summary>
    public Activity? StartApi(HttpContext context, TenantContext tenant, string apiName, bool grpc) =>
        options.Exporting ? StartApiSpan(context, tenant, apiName, grpc) : null;

    /// <summary>Ends an API call's span with the call's outcome (an HTTP status, gRPC outcomes mapped to one).</summary>
    public static void EndApi(Activity span, int status)
    {
        span.SetTag("http.response.status_code", status);
        if (status >= 500)
        {
            span.SetStatus(ActivityStatusCode.Error);
        }
        span.Dispose();
    }

    /// <summary>
    /// The span of <paramref name="callerAppId"/>'s invocation of <paramref name="targetAppId"/>, a child of the API
    /// call's span (or of <paramref name="traceParent"/>, the caller's); null when not traced. Its id is the
    /// <c>traceparent</c> the target receives.
    /// </summary>
    public Activity? StartInvoke(string callerAppId, string targetAppId, string method, string? traceParent)
    {
        if (!options.Exporting || RateOf(callerAppId) <= 0)
        {
            return null;
        }
        // Within the API call its span is the parent; otherwise the trace the caller sent.
        var parent = Activity.Current is { Source.Name: SourceName } current ? current.Context : Parse(traceParent, null);
        var span = StartOutbound($"CallLocal/{targetAppId}/{method}", callerAppId, parent);
        span?.SetTag("dapr.callee_app_id", targetAppId);
        return span;
    }

    /// <summary>
    /// The span of an event's delivery to <paramref name="appId"/>, a child of the publisher's span named by the event's
    /// <c>traceparent</c>; null when not traced. Its id is the <c>traceparent</c> the app receives.
    /// </summary>
    public Activity? StartDelivery(string appId, string pubsubName, string topic, string? traceParent, string? traceState)
    {
        if (!options.Exporting || RateOf(appId) <= 0)
        {
            return null;
        }
        var span = StartOutbound($"pubsub/{topic}", appId, Parse(traceParent, traceState));
        if (span is not null)
        {
            span.SetTag("messaging.system", "dapr");
            span.SetTag("messaging.destination.name", topic);
            span.SetTag("dapr.pubsub", pubsubName);
        }
        return span;
    }

    public void Dispose() => _source.Dispose();

    private Activity? StartApiSpan(HttpContext context, TenantContext tenant, string apiName, bool grpc)
    {
        var rate = tenant.Policy.SamplingRate ?? options.DefaultSamplingRate;
        if (rate <= 0 || !_source.HasListeners())
        {
            return null;
        }
        var headers = context.Request.Headers;
        ActivityContext.TryParse(headers.TraceParent.ToString(), headers.TraceState.ToString(), isRemote: true, out var parent);
        if (!Samples(rate, parent))
        {
            return null;
        }
        var name = grpc
            ? context.Request.Path.Value ?? apiName
            : $"{context.Request.Method} {(context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? context.Request.Path.Value}";
        var span = Start(name, ActivityKind.Server, parent);
        if (span is not null)
        {
            span.SetTag(AppIdTag, tenant.AppId);
            span.SetTag("dapr.api", apiName);
            span.SetTag(grpc ? "rpc.method" : "http.request.method", grpc ? context.Request.Path.Value : context.Request.Method);
        }
        return span;
    }

    private static ActivityContext Parse(string? traceParent, string? traceState) =>
        ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var given) ? given : default;

    private Activity? StartOutbound(string name, string appId, ActivityContext parent)
    {
        if (!_source.HasListeners())
        {
            return null;
        }
        if (!Samples(RateOf(appId), parent))
        {
            return null;
        }
        var span = Start(name, ActivityKind.Client, parent);
        span?.SetTag(AppIdTag, appId);
        return span;
    }

    private Activity? Start(string name, ActivityKind kind, ActivityContext parent)
    {
        if (parent == default && Activity.Current is not null)
        {
            // A new trace: not a child of whatever span this flow happens to carry.
            Activity.Current = null;
        }
        return _source.StartActivity(name, kind, parent);
    }

    private double RateOf(string appId) =>
        configuration.Current.Tenants.TryGetValue(appId, out var tenant) ? tenant.Policy.SamplingRate ?? options.DefaultSamplingRate : 0;

    /// <summary>Dapr's sampler: parent-based, else the rate.</summary>
    private static bool Samples(double rate, ActivityContext parent) =>
        rate > 0 && (parent != default
            ? (parent.TraceFlags & ActivityTraceFlags.Recorded) != 0
            : rate >= 1 || Random.Shared.NextDouble() < rate);
}
