using System.Diagnostics;
using System.Diagnostics.Metrics;
using SharedRuntime.Admission;

namespace SharedRuntime.Metrics;

/// <summary>
/// Per-tenant series, exported to Prometheus as <c>sharedruntime_requests_total</c>,
/// <c>sharedruntime_request_duration_seconds</c>, <c>sharedruntime_rejections_total</c> and
/// <c>sharedruntime_inflight_requests</c>, every one labelled <c>app_id</c>.
/// </summary>
public sealed class RuntimeMetrics
{
    public const string MeterName = "SharedRuntime";

    private static readonly string[] StatusCodes = Enumerable.Range(0, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _rejections;
    private readonly UpDownCounter<long> _inflight;
    private readonly Counter<long> _reloads;
    private readonly Counter<long> _deliveries;
    private volatile TenantLimitMeasurements _tenantLimits = new([]);
    private int _servingLastGood;
    private int _refusedTenants;

    public RuntimeMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _requests = meter.CreateCounter<long>("sharedruntime.requests", description: "Requests answered, by tenant, API and status code.");
        _duration = meter.CreateHistogram<double>("sharedruntime.request.duration", unit: "s", description: "Time to answer a request, by tenant and API.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _rejections = meter.CreateCounter<long>("sharedruntime.rejections", description: "Requests refused by a tenant limit, by tenant and reason.");
        _inflight = meter.CreateUpDownCounter<long>("sharedruntime.inflight_requests", description: "Requests of a tenant being served now.");
        _reloads = meter.CreateCounter<long>("sharedruntime.config.reloads", description: "Configuration reloads, by result.");
        _deliveries = meter.CreateCounter<long>("sharedruntime.deliveries", description: "Events delivered to subscriber apps, by tenant, pubsub component and outcome.");
        meter.CreateObservableGauge("sharedruntime.config.fail_static", () => Volatile.Read(ref _servingLastGood),
            description: "1 while the runtime serves its cached last good configuration because its source failed at start-up.");
        meter.CreateObservableGauge("sharedruntime.config.refused_tenants", () => Volatile.Read(ref _refusedTenants),
            description: "Tenant documents in the current configuration that were refused (bad field, duplicate app-id or token); those tenants are unusable.");
        meter.CreateObservableGauge("sharedruntime.tenant.limit", () => _tenantLimits.Limits,
            description: "A tenant's effective limit on this runtime (what it asked, within its namespace's TenantLimitPolicy ceiling), by tenant and limit.");
        meter.CreateObservableGauge("sharedruntime.tenant.limits_clamped", () => _tenantLimits.Clamped,
            description: "How many of a tenant's limits its namespace's TenantLimitPolicy lowered below what it asked, by tenant.");
    }

    /// <summary>
    /// The effective limits of every tenant of the configuration now in place, and how many were clamped. The
    /// measurements are made when first observed, so a reload pays nothing for them when nothing collects metrics.
    /// </summary>
    public void TenantLimits(IEnumerable<(string AppId, Configuration.TenantLimits Limits, int Clamped)> tenants) => _tenantLimits = new(tenants);

    /// <summary>The tenant limit gauges' measurements of one configuration, made once, when first observed.</summary>
    private sealed class TenantLimitMeasurements(IEnumerable<(string AppId, Configuration.TenantLimits Limits, int Clamped)> tenants)
    {
        private readonly Lazy<(IReadOnlyList<Measurement<double>> Limits, IReadOnlyList<Measurement<int>> Clamped)> _made = new(() => Make(tenants));

        public IReadOnlyList<Measurement<double>> Limits => _made.Value.Limits;

        public IReadOnlyList<Measurement<int>> Clamped => _made.Value.Clamped;

        private static (IReadOnlyList<Measurement<double>>, IReadOnlyList<Measurement<int>>) Make(IEnumerable<(string AppId, Configuration.TenantLimits Limits, int Clamped)> tenants)
        {
            var limits = new List<Measurement<double>>();
            var clamped = new List<Measurement<int>>();
            foreach (var (appId, l, count) in tenants)
            {
                var app = new KeyValuePair<string, object?>("app_id", appId);
                Add("requestsPerSecond", l.RequestsPerSecond);
                Add("burst", l.Burst);
                Add("maxConcurrency", l.MaxConcurrency);
                Add("maxQueue", l.MaxQueue);
                Add("maxRequestBodyBytes", l.MaxRequestBodyBytes);
                Add("stateMaxKeys", l.StateMaxKeys);
                Add("stateMaxBytes", l.StateMaxBytes);
                Add("maxMemoryBytes", l.MaxMemoryBytes);
                clamped.Add(new Measurement<int>(count, app));

                void Add(string name, double value) => limits.Add(new Measurement<double>(value, app, new KeyValuePair<string, object?>("limit", name)));
            }
            return (limits, clamped);
        }
    }

    public void RequestStarted(string appId)
    {
        if (_inflight.Enabled)
        {
            _inflight.Add(1, new KeyValuePair<string, object?>("app_id", appId));
        }
    }

    public void RequestFinished(string appId, string api, int statusCode, long startTimestamp)
    {
        var appTag = new KeyValuePair<string, object?>("app_id", appId);
        if (_inflight.Enabled)
        {
            _inflight.Add(-1, appTag);
        }
        Record(appId, api, statusCode, startTimestamp);
    }

    /// <summary>A request that was answered without entering (rejected or unauthenticated tenants excluded).</summary>
    public void Record(string appId, string api, int statusCode, long startTimestamp)
    {
        var appTag = new KeyValuePair<string, object?>("app_id", appId);
        var apiTag = new KeyValuePair<string, object?>("api", api);
        if (_requests.Enabled)
        {
            var code = (uint)statusCode < StatusCodes.Length ? StatusCodes[statusCode] : "other";
            _requests.Add(1, appTag, apiTag, new KeyValuePair<string, object?>("code", code));
        }
        if (_duration.Enabled)
        {
            _duration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds, appTag, apiTag);
        }
    }

    public void Rejected(string appId, RejectionReason reason)
    {
        if (_rejections.Enabled)
        {
            _rejections.Add(1, new KeyValuePair<string, object?>("app_id", appId), new KeyValuePair<string, object?>("reason", reason.Label()));
        }
    }

    /// <summary>
    /// One delivery attempt's end, exported as <c>sharedruntime_deliveries_total</c>; outcome is success, dropped,
    /// dead_lettered or retry (the event stays in the broker).
    /// </summary>
    public void Delivered(string appId, string pubsubName, string outcome)
    {
        if (_deliveries.Enabled)
        {
            _deliveries.Add(1, new KeyValuePair<string, object?>("app_id", appId), new KeyValuePair<string, object?>("pubsub", pubsubName), new KeyValuePair<string, object?>("outcome", outcome));
        }
    }

    /// <summary>Exported as <c>sharedruntime_config_fail_static</c>.</summary>
    public void ServingLastGood(bool serving) => Volatile.Write(ref _servingLastGood, serving ? 1 : 0);

    /// <summary>Exported as <c>sharedruntime_config_refused_tenants</c>.</summary>
    public void RefusedTenants(int count) => Volatile.Write(ref _refusedTenants, count);

    public void Reloaded(bool success)
    {
        if (_reloads.Enabled)
        {
            _reloads.Add(1, new KeyValuePair<string, object?>("result", success ? "success" : "failure"));
        }
    }
}
