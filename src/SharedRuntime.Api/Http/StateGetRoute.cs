using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.Http;

/// <summary>
/// The state GET, <c>GET /v1.0/state/{storeName}/{key}</c> (and <c>v1.0-alpha1</c>), recognised from the path before
/// the router runs: its endpoint is set directly, so the router neither matches it nor builds a route-value dictionary
/// for it (about 250 bytes a request). The endpoint carries the same handler and <see cref="ApiEndpointMetadata"/> as
/// the routed one, so the tenant middleware treats it alike (listener check, admission, metrics). A path this does not
/// recognise exactly (another method, an empty segment, a trailing slash) goes to the router as before.
/// </summary>
internal static class StateGetRoute
{
    private static readonly string[] Versions = ["/v1.0/state/", "/v1.0-alpha1/state/"];

    /// <summary>Sets the state GET's endpoint on the requests it recognises; call before <c>UseRouting</c>.</summary>
    public static IApplicationBuilder UseDaprStateGetRoute(this IApplicationBuilder app)
    {
        var handlers = ActivatorUtilities.CreateInstance<DaprHttpHandlers>(app.ApplicationServices);
        var endpoint = new Endpoint(handlers.GetState,
            new EndpointMetadataCollection(new ApiEndpointMetadata(Listener.DaprHttp, "state"), new Microsoft.AspNetCore.Routing.HttpMethodMetadata(["GET"])),
            "HTTP: GET /v1.0/state/{storeName}/{key}");
        return app.Use(next => context =>
        {
            if (HttpMethods.IsGet(context.Request.Method) && IsMatch(context.Request.Path.Value) && context.GetEndpoint() is null)
            {
                context.SetEndpoint(endpoint);
            }
            return next(context);
        });
    }

    /// <summary>
    /// Whether <paramref name="path"/> is <c>/v1.0/state/{storeName}/{key}</c> (the version and <c>state</c> in any case,
    /// as the router compares literals), both values non-empty and without a slash; the values are the path's own
    /// characters, as the router's are.
    /// </summary>
    internal static bool TryMatch(string? path, out string storeName, out string key)
    {
        if (!TryFind(path, out var store, out var keyStart))
        {
            storeName = key = "";
            return false;
        }
        storeName = path![store];
        key = path[keyStart..];
        return true;
    }

    private static bool IsMatch(string? path) => TryFind(path, out _, out _);

    private static bool TryFind(string? path, out Range storeName, out int keyStart)
    {
        storeName = default;
        keyStart = 0;
        if (path is null)
        {
            return false;
        }
        foreach (var prefix in Versions)
        {
            if (!path.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var rest = path.AsSpan(prefix.Length);
            var slash = rest.IndexOf('/');
            if (slash <= 0 || slash == rest.Length - 1 || rest[(slash + 1)..].Contains('/'))
            {
                return false;
            }
            storeName = new Range(prefix.Length, prefix.Length + slash);
            keyStart = prefix.Length + slash + 1;
            return true;
        }
        return false;
    }
}
