using System.Collections.Frozen;
using SharedRuntime.Configuration;

namespace SharedRuntime.Policy;

/// <summary>
/// A tenant's <c>api.allowed</c>/<c>api.denied</c>, compiled when its snapshot is built, applied as Dapr applies them:
/// a denied API is refused; when an allow list is present, only what it names is served; the deny list wins where
/// both name an API. Each protocol reads its own rules only.
/// <para>
/// HTTP: a rule <c>{name, version}</c> names an endpoint when <c>version/name</c> is its group (<c>v1/state</c>,
/// <c>v1alpha1/publish</c>), or is the start of its route (<c>v1.0/state</c> for <c>/v1.0/state/{storeName}/{key}</c>).
/// gRPC: a rule names the methods Dapr lists for <c>name.version</c> (<see cref="DaprGrpcApis"/>); a gRPC list whose
/// rules name no method is no list, as in Dapr.
/// </para>
/// </summary>
public sealed class ApiAccessPolicy
{
    private readonly FrozenSet<string> _httpAllowed;
    private readonly FrozenSet<string> _httpDenied;
    private readonly FrozenSet<string> _grpcAllowed;
    private readonly FrozenSet<string> _grpcDenied;

    private ApiAccessPolicy(ApiAccessConfig config)
    {
        _httpAllowed = HttpKeys(config.Allowed);
        _httpDenied = HttpKeys(config.Denied);
        _grpcAllowed = GrpcMethods(config.Allowed);
        _grpcDenied = GrpcMethods(config.Denied);
    }

    /// <summary>The compiled rules, or null when <paramref name="config"/> restricts nothing.</summary>
    public static ApiAccessPolicy? Compile(ApiAccessConfig? config) => config is null ? null : new ApiAccessPolicy(config);

    /// <summary>
    /// Whether an HTTP endpoint may be called: <paramref name="group"/> is its <c>version/name</c> group
    /// (<c>v1/state</c>), <paramref name="route"/> its route with its version and without the leading slash
    /// (<c>v1.0/state/{storeName}/{key}</c>).
    /// </summary>
    public bool AllowsHttp(string group, string route) =>
        !(_httpDenied.Count > 0 && Matches(_httpDenied, group, route)) &&
        (_httpAllowed.Count == 0 || Matches(_httpAllowed, group, route));

    /// <summary>Whether the gRPC method <paramref name="fullMethod"/> (<c>/dapr.proto.runtime.v1.Dapr/GetState</c>) may be called.</summary>
    public bool AllowsGrpc(string fullMethod) =>
        !fullMethod.StartsWith(DaprGrpcApis.ServicePrefix, StringComparison.Ordinal) ||
        (!_grpcDenied.Contains(fullMethod) && (_grpcAllowed.Count == 0 || _grpcAllowed.Contains(fullMethod)));

    private static bool Matches(FrozenSet<string> rules, string group, string route)
    {
        if (rules.Contains(group))
        {
            return true;
        }
        foreach (var rule in rules.Items)
        {
            if (route.StartsWith(rule, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    private static FrozenSet<string> HttpKeys(IReadOnlyList<ApiAccessRule> rules) =>
        rules.Where(static r => r.Protocol == ApiProtocol.Http).Select(static r => $"{r.Version}/{r.Name}").ToFrozenSet(StringComparer.Ordinal);

    private static FrozenSet<string> GrpcMethods(IReadOnlyList<ApiAccessRule> rules) =>
        rules.Where(static r => r.Protocol == ApiProtocol.Grpc)
            .SelectMany(static r => DaprGrpcApis.MethodsByRule.TryGetValue($"{r.Name}.{r.Version}", out var methods) ? methods : [])
            .Select(static m => DaprGrpcApis.ServicePrefix + m)
            .ToFrozenSet(StringComparer.Ordinal);
}
