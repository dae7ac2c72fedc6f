using System.Globalization;
using System.Text;
using Polly;
using SharedRuntime.Configuration;

namespace SharedRuntime.Routing;

/// <summary>
/// The Resiliency policies that govern one tenant's calls to one target: the first Resiliency resource (by name) that
/// applies to the tenant and names policies for the target, the names it gives, and a fingerprint of what those names
/// stand for. Two policies with the same fingerprint build the same pipeline, so a reload that leaves it unchanged
/// keeps the pipeline (and its breaker state).
/// </summary>
public sealed record OutboundPolicy(ResiliencyConfig Resiliency, PolicyRefs Refs, string Fingerprint)
{
    /// <summary>
    /// The policies for the calls of <paramref name="tenant"/> (by the Resiliencies of its namespace that its app-id is
    /// in the scopes of) to the target <paramref name="select"/> picks, or null.
    /// </summary>
    /// <param name="resiliencies">The Resiliency resources, ordered by name.</param>
    public static OutboundPolicy? Find(IReadOnlyList<ResiliencyConfig> resiliencies, TenantConfig tenant, Func<ResiliencyConfig, PolicyRefs?> select)
    {
        foreach (var resiliency in resiliencies)
        {
            if (resiliency.AppliesTo(tenant.AppId, tenant.Namespace) && select(resiliency) is { } refs)
            {
                return new OutboundPolicy(resiliency, refs, FingerprintOf(resiliency, refs));
            }
        }
        return null;
    }

    /// <summary>The policies for <paramref name="tenant"/>'s calls into component <paramref name="component"/> (its outbound target).</summary>
    public static OutboundPolicy? ForComponent(IReadOnlyList<ResiliencyConfig> resiliencies, TenantConfig tenant, string component) =>
        resiliencies.Count == 0 ? null : Find(resiliencies, tenant, r => r.Components.GetValueOrDefault(component)?.Outbound);

    /// <summary>Whether two policies (either may be none) build the same pipeline.</summary>
    public static bool SameAs(OutboundPolicy? a, OutboundPolicy? b) =>
        a is null ? b is null : b is not null && string.Equals(a.Fingerprint, b.Fingerprint, StringComparison.Ordinal);

    private static string FingerprintOf(ResiliencyConfig resiliency, PolicyRefs refs)
    {
        var text = new StringBuilder(resiliency.Name);
        if (refs.Timeout is { } timeout)
        {
            text.Append(CultureInfo.InvariantCulture, $"\ntimeout {timeout}={resiliency.Timeouts[timeout].Ticks}");
        }
        if (refs.Retry is { } retryName)
        {
            var retry = resiliency.Retries[retryName];
            text.Append(CultureInfo.InvariantCulture,
                $"\nretry {retryName}={retry.Policy},{retry.Duration.Ticks},{retry.MaxInterval.Ticks},{retry.MaxRetries},{retry.HttpStatusCodes?.Text},{retry.GrpcStatusCodes?.Text}");
        }
        if (refs.CircuitBreaker is { } breakerName)
        {
            var breaker = resiliency.CircuitBreakers[breakerName];
            text.Append(CultureInfo.InvariantCulture,
                $"\nbreaker {breakerName}={breaker.MaxRequests},{breaker.Interval.Ticks},{breaker.Timeout.Ticks},{breaker.Trip.Text}");
        }
        return text.ToString();
    }
}
