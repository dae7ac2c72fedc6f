using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.LoadTest;

/// <summary>
/// A Kestrel endpoint that answers the same bytes as the runtime's state GET, with nothing in between: over HTTP/1.1,
/// and also over HTTP/2 without TLS on a second port when asked.
/// </summary>
internal static class BareKestrel
{
    public static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"order":42,"items":["a","b","c"]}""");

    public static async Task ServeAsync(int port, int? h2cPort = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            ConfigureLikeRuntime(k);
            k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http1);
            if (h2cPort is { } h2c)
            {
                k.Listen(IPAddress.Loopback, h2c, l => l.Protocols = HttpProtocols.Http2);
            }
        });
        var app = builder.Build();
        app.MapGet("/v1.0/state/store/k", static context =>
        {
            context.Response.StatusCode = 200;
            context.Response.Headers.ETag = "1";
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = Body.Length;
            return context.Response.Body.WriteAsync(Body).AsTask();
        });
        app.MapGet("/v1.0/healthz", static context =>
        {
            context.Response.StatusCode = 204;
            return Task.CompletedTask;
        });
        await app.RunAsync();
    }

    /// <summary>
    /// The server settings the runtime's listeners have (RuntimeApplication.ConfigureServerLimits), so that the
    /// comparison measures the runtime's own work: no Server header, the same request limits.
    /// </summary>
    public static void ConfigureLikeRuntime(KestrelServerOptions kestrel)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxRequestBodySize = 4 * 1024 * 1024;   // TenantLimits.Defaults.MaxRequestBodyBytes
        kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
        kestrel.Limits.MaxRequestHeaderCount = 100;
        kestrel.Limits.MaxRequestLineSize = 8 * 1024;
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
    }
}
