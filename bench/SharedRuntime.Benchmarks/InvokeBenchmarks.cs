using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharedRuntime.Host;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// One HTTP service invocation end to end, in this process: a caller invokes <c>GET /v1.0/invoke/target/method/...</c>
/// and the runtime (Kestrel, admission, routing, access control, the app channel's connection pool) forwards it to a
/// bare Kestrel app in this process, against the same request sent to that app directly. Both clients are raw sockets
/// that allocate nothing per request, so the difference between the two rows' allocations is the runtime's.
/// </summary>
[MemoryDiagnoser]
public class InvokeBenchmarks
{
    private const string Token = "bench-token";
    private const string Path = "/v1.0/state/store/k";
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"order":42,"items":["a","b","c"]}""");

    private InProcessRuntime _runtime = null!;
    private WebApplication _app = null!;
    private RawHttpClient _viaRuntime = null!;
    private RawHttpClient _direct = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _app = await StartAppAsync();
        var appPort = new Uri(_app.Urls.First()).Port;
        _runtime = await InProcessRuntime.StartAsync($$"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: caller
            spec:
              apiToken: {value: {{Token}}}
              limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: target
            spec:
              apiToken: {value: target-token}
              appEndpoint: http://127.0.0.1:{{appPort}}
              appChannel: {maxConcurrency: 256, maxQueue: 256}
            """);
        _viaRuntime = RawHttpClient.Connect(_runtime.Options.DaprHttpPort, $"GET /v1.0/invoke/target/method{Path} HTTP/1.1\r\nHost: 127.0.0.1\r\ndapr-api-token: {Token}\r\n\r\n");
        _direct = RawHttpClient.Connect(appPort, $"GET {Path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        // Same status, body and headers from both (but Date); a mismatch would make the comparison meaningless.
        var viaRuntime = RawHttpClient.WithoutDate(_viaRuntime.LearnAnswer());
        var direct = RawHttpClient.WithoutDate(_direct.LearnAnswer());
        if (viaRuntime != direct)
        {
            throw new InvalidOperationException($"the answers differ:\n{viaRuntime}\n---\n{direct}");
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _viaRuntime.Dispose();
        _direct.Dispose();
        await _runtime.DisposeAsync();
        await _app.DisposeAsync();
    }

    [Benchmark(Baseline = true, Description = "the app called directly")]
    public int Direct() => _direct.RoundTrip();

    [Benchmark(Description = "the app invoked through the runtime")]
    public int Runtime() => _viaRuntime.RoundTrip();

    private static async Task<WebApplication> StartAppAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            RuntimeApplication.ConfigureServerLimits(kestrel, Configuration.TenantLimits.Defaults.MaxRequestBodyBytes);
            kestrel.Listen(IPAddress.Loopback, 0);
        });
        var app = builder.Build();
        app.MapGet(Path, static context =>
        {
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = Body.Length;
            return context.Response.Body.WriteAsync(Body).AsTask();
        });
        await app.StartAsync();
        return app;
    }
}
