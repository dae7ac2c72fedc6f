using System.Globalization;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.LoadTest;

/// <summary>A Kestrel endpoint that answers the same bytes as the runtime's state GET, with nothing in between.</summary>
internal static class BareKestrel
{
    public static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"order":42,"items":["a","b","c"]}""");

    public static async Task ServeAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port));
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
}
