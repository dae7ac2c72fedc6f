using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Tests;

/// <summary>A real HTTP app on 127.0.0.1 with a free port, answering with <c>handler</c>: what an app behind the runtime is.</summary>
public sealed class TestApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestApp(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static Task<TestApp> StartAsync(RequestDelegate handler, HttpProtocols protocols = HttpProtocols.Http1AndHttp2) =>
        StartAsync(handler, port: null, protocols);

    /// <summary>Starts the app on <paramref name="port"/> (a free one when null): an app restarted where it was before.</summary>
    public static async Task<TestApp> StartAsync(RequestDelegate handler, int? port, HttpProtocols protocols = HttpProtocols.Http1AndHttp2)
    {
        for (var attempt = 1; ; attempt++)
        {
            var builder = TestHost.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            var chosen = port ?? TestRuntime.FreePorts(1)[0];
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, chosen, l => l.Protocols = protocols));
            var app = builder.Build();
            app.Run(handler);
            try
            {
                await app.StartAsync();
                return new TestApp(app, new Uri($"http://127.0.0.1:{chosen}"));
            }
            catch (Exception ex) when (attempt < 5 && port is null && TestRuntime.IsAddressInUse(ex))
            {
                await app.DisposeAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5))) { await _app.StopAsync(stop.Token); }
        await _app.DisposeAsync();
    }
}
