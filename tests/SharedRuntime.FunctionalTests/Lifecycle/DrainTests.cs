using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>Stopping the runtime: readiness turns false, requests in flight finish, the process exits 0.</summary>
public sealed class DrainTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-drain-").FullName;

    [Fact]
    public async Task RequestInFlightAtSigtermCompletesAndTheProcessExitsZero()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // SIGTERM is sent with kill(1)
        }
        var arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = await TestApp.StartAsync(async context =>
        {
            arrived.TrySetResult();
            await release.Task.WaitAsync(Timeout);
            await context.Response.WriteAsync("slow answer");
        });
        var resources = Path.Combine(_folder, "resources");
        Directory.CreateDirectory(resources);
        await File.WriteAllTextAsync(Path.Combine(resources, "app.yaml"),
            Resources.Tenant("drain-app", "drain-token") +
            Resources.Component("slow", "bindings.http", new Dictionary<string, string> { ["url"] = app.Address.ToString() }));
        await using var runtime = await RuntimeProcess.StartReadyAsync(
            "--resources-path", resources, "--state-dir", Path.Combine(_folder, "state"), "--dapr-graceful-shutdown-seconds", "10", "--reuse-port", "false");
        using var client = new HttpClient { BaseAddress = runtime.HttpAddress, Timeout = Timeout };
        client.DefaultRequestHeaders.Add("dapr-api-token", "drain-token");

        var inFlight = client.PostAsync("/v1.0/bindings/slow", new StringContent("""{"operation":"get"}""", Encoding.UTF8, "application/json"));
        await arrived.Task.WaitAsync(Timeout);
        runtime.Terminate();
        await runtime.WaitForLogAsync("Draining");

        // Readiness is off and the listeners are closed: a probe gets no 204 while the request is still in flight.
        Assert.NotEqual(HttpStatusCode.NoContent, await ProbeAsync(runtime.HttpAddress));
        Assert.False(runtime.HasExited);

        release.SetResult();
        using var response = await inFlight.WaitAsync(Timeout);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("slow answer", await response.Content.ReadAsStringAsync());
        Assert.True(response.Headers.ConnectionClose, "a keep-alive response finished during the drain closes its connection");
        Assert.Equal(0, await runtime.WaitForExitAsync(Timeout));
        Assert.Contains("Drain complete", runtime.Log);
    }

    [Fact]
    public async Task OnceDrainingHealthzIsNotReadyAndKeepAliveResponsesCloseTheirConnection()
    {
        await using var runtime = await TestRuntime.StartAsync(Resources.Tenant("draining-app", "draining-token"));
        var client = runtime.Client("draining-token");
        using (var before = await client.GetAsync("/v1.0/healthz"))
        {
            Assert.Equal(HttpStatusCode.NoContent, before.StatusCode);
            Assert.False(before.Headers.ConnectionClose ?? false);
        }

        runtime.App.Services.GetRequiredService<ShutdownDrain>().Begin();

        // The connection opened before the drain is still up; new connections are no longer accepted.
        using var health = await client.GetAsync("/v1.0/healthz");
        Assert.Equal(HttpStatusCode.InternalServerError, health.StatusCode);
        Assert.Contains("ERR_HEALTH_NOT_READY", await health.Content.ReadAsStringAsync());
        Assert.True(health.Headers.ConnectionClose);
        await Assert.ThrowsAsync<HttpRequestException>(() => ProbeAsync(runtime.HttpAddress, throwOnRefused: true));
    }

    /// <summary>A readiness probe on a new connection, as a kubelet sends it: the status, or null when refused.</summary>
    private static async Task<HttpStatusCode?> ProbeAsync(Uri address, bool throwOnRefused = false)
    {
        using var probe = new HttpClient { BaseAddress = address, Timeout = Timeout };
        try
        {
            using var response = await probe.GetAsync("/v1.0/healthz");
            return response.StatusCode;
        }
        catch (HttpRequestException) when (!throwOnRefused)
        {
            return null;
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
