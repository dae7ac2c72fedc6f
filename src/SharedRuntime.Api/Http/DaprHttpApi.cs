using System.Text.Json;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.Http;

/// <summary>The Dapr HTTP API v1.0 (and the v1.0-alpha1 routes SDKs use), answered for the calling tenant.</summary>
internal static class DaprHttpApi
{
    public static IEndpointRouteBuilder MapDaprHttpApi(this IEndpointRouteBuilder endpoints)
    {
        // Handlers hold the building blocks (singletons) directly: no per-request service scope on the hot path.
        ActivatorUtilities.CreateInstance<DaprHttpHandlers>(endpoints.ServiceProvider).Map(endpoints);
        return endpoints;
    }

    /// <summary>Stored JSON is embedded as JSON; anything else as a string.</summary>
    internal static void WriteData(Utf8JsonWriter writer, ReadOnlySpan<byte> data) => DaprHttpHandlers.WriteData(writer, data);
}
