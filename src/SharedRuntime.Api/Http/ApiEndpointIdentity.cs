using System.Runtime.CompilerServices;
using Grpc.AspNetCore.Server;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using SharedRuntime.Policy;

namespace SharedRuntime.Http;

/// <summary>
/// An endpoint of the Dapr API as API access rules name it: over HTTP its group (<c>v1/state</c>) and its route with
/// its version (<c>v1.0/state/{storeName}/{key}</c>), over gRPC its full method name. Worked out once per endpoint from
/// the endpoint itself (never from the request's path, whose case the router ignores), and kept.
/// </summary>
internal sealed class ApiEndpointIdentity
{
    // Held as long as the endpoint is: a runtime's endpoints live as long as the runtime.
    private static readonly ConditionalWeakTable<Endpoint, ApiEndpointIdentity> Known = new();

    private ApiEndpointIdentity(string group, string route, string? grpcMethod, ApiEndpointIdentity? alpha = null)
    {
        Group = group;
        Route = route;
        GrpcMethod = grpcMethod;
        Alpha = alpha;
    }

    public string Group { get; }

    public string Route { get; }

    public string? GrpcMethod { get; }

    /// <summary>For an endpoint serving both versions from one route (the state GET's own): its <c>v1.0-alpha1</c> form.</summary>
    private ApiEndpointIdentity? Alpha { get; }

    /// <summary>Whether <paramref name="policy"/> lets the request's endpoint be called.</summary>
    public static bool IsAllowed(ApiAccessPolicy policy, HttpContext context, Endpoint endpoint, ApiEndpointMetadata api)
    {
        if (!Known.TryGetValue(endpoint, out var identity))
        {
            identity = Of(endpoint, api);
            Known.AddOrUpdate(endpoint, identity);
        }
        if (identity.GrpcMethod is { } method)
        {
            return policy.AllowsGrpc(method);
        }
        if (identity.Alpha is { } alpha && context.Request.Path.StartsWithSegments("/v1.0-alpha1", StringComparison.OrdinalIgnoreCase))
        {
            identity = alpha;
        }
        return policy.AllowsHttp(identity.Group, identity.Route);
    }

    /// <summary>The API and version an HTTP endpoint was denied as, for the answer.</summary>
    public static string Describe(Endpoint endpoint) =>
        Known.TryGetValue(endpoint, out var identity) ? identity.GrpcMethod ?? identity.Group : "this API";

    private static ApiEndpointIdentity Of(Endpoint endpoint, ApiEndpointMetadata api)
    {
        if (endpoint.Metadata.GetMetadata<GrpcMethodMetadata>() is { } grpc)
        {
            return new ApiEndpointIdentity(api.Api, "", grpc.Method.FullName);
        }
        if (endpoint is RouteEndpoint { RoutePattern.RawText: { } pattern } && pattern.TrimStart('/') is var route &&
            route.IndexOf('/') is var slash and > 0 && route[..slash] is "v1.0" or "v1.0-alpha1")
        {
            return Http(api.Api, route[..slash], route[(slash + 1)..]);
        }
        if (api.Api == "invoke")
        {
            // The fallback that forwards any path with a dapr-app-id header: Dapr's invocation fallback.
            return Http("invoke", "v1.0", "invoke/*");
        }
        // An endpoint set before routing (the state GET's own): both versions of the same route.
        return Http(api.Api, "v1.0", $"{api.Api}/*", Http(api.Api, "v1.0-alpha1", $"{api.Api}/*"));
    }

    private static ApiEndpointIdentity Http(string api, string version, string route, ApiEndpointIdentity? alpha = null)
    {
        // Dapr groups unlock apart from lock.
        var name = api == "lock" && route.StartsWith("unlock", StringComparison.Ordinal) ? "unlock" : api;
        var groupVersion = version == "v1.0" ? "v1" : "v1alpha1";
        return new ApiEndpointIdentity($"{groupVersion}/{name}", $"{version}/{route}", null, alpha);
    }
}
