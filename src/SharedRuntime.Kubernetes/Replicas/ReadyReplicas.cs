using System.Text.Json;

namespace SharedRuntime.Kubernetes.Replicas;

/// <summary>
/// Counts the ready runtime replicas behind a Service from its EndpointSlices (discovery.k8s.io/v1). An endpoint counts
/// when its <c>conditions.ready</c> is true or unset (the API's "unknown, treat as ready"); a terminating or failing pod
/// is not ready. A dual-stack Service lists every pod once per address family, so each family is counted on its own
/// (by pod, else by address) and the largest count is taken. This runtime is one of them even before its own endpoint
/// turns ready, so the count is at least 1.
/// </summary>
internal static class ReadyReplicas
{
    /// <summary>The Service name label the endpoints controller puts on every slice of a Service.</summary>
    public const string ServiceNameLabel = "kubernetes.io/service-name";

    public static int Count(IEnumerable<JsonElement> slices)
    {
        var byFamily = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        foreach (var slice in slices)
        {
            if (slice.ValueKind != JsonValueKind.Object || !slice.TryGetProperty("endpoints", out var endpoints) || endpoints.ValueKind != JsonValueKind.Array)
            {
                continue;
            }
            var family = slice.TryGetProperty("addressType", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString()! : "";
            if (!byFamily.TryGetValue(family, out var ready))
            {
                ready = new HashSet<string>(StringComparer.Ordinal);
                byFamily[family] = ready;
            }
            foreach (var endpoint in endpoints.EnumerateArray())
            {
                if (IsReady(endpoint) && IdentityOf(endpoint) is { } identity)
                {
                    ready.Add(identity);
                }
            }
        }
        return Math.Max(1, byFamily.Values.Select(r => r.Count).DefaultIfEmpty(0).Max());
    }

    private static bool IsReady(JsonElement endpoint) =>
        !(endpoint.TryGetProperty("conditions", out var conditions) && conditions.ValueKind == JsonValueKind.Object &&
          conditions.TryGetProperty("ready", out var ready) && ready.ValueKind == JsonValueKind.False);

    private static string? IdentityOf(JsonElement endpoint)
    {
        if (endpoint.TryGetProperty("targetRef", out var target) && target.ValueKind == JsonValueKind.Object)
        {
            if (target.TryGetProperty("uid", out var uid) && uid.GetString() is { Length: > 0 } u)
            {
                return u;
            }
            if (target.TryGetProperty("name", out var name) && name.GetString() is { Length: > 0 } n)
            {
                return $"{(target.TryGetProperty("namespace", out var ns) ? ns.GetString() : "")}/{n}";
            }
        }
        return endpoint.TryGetProperty("addresses", out var addresses) && addresses.ValueKind == JsonValueKind.Array && addresses.GetArrayLength() > 0
            ? addresses[0].GetString()
            : null;
    }
}
