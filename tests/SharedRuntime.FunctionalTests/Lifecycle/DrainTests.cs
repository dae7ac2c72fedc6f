using System.Net;
using System.Net.Sockets;
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

    [Fact]
    public async Task Http2ConnectionsGetGoAwayWhenTheDrainBeginsAndANewOneGetsTheServerPrefaceFirst()
    {
        await using var runtime = await TestRuntime.StartAsync(Resources.Tenant("draining-app", "draining-token"));
        var grpc = new IPEndPoint(IPAddress.Loopback, runtime.GrpcAddress.Port);

        // One connection accepted but not yet past its preface, as a client that connected in the instant before a
        // hand-off, or as the socket Grpc.Net.Client connects ahead of need and starts HTTP/2 on later; then one in use.
        // The listener accepts in order, so once the second is answered the first is accepted.
        using var fresh = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await fresh.ConnectAsync(grpc).WaitAsync(Timeout);
        using var established = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await established.ConnectAsync(grpc).WaitAsync(Timeout);
        await SendPrefaceAsync(established);
        Assert.Equal(Http2Settings, await ReadFrameTypeAsync(established));

        runtime.App.Services.GetRequiredService<ShutdownDrain>().Begin();

        // The connection in use hears GOAWAY now, while the process still serves, not when the server stops.
        Assert.True(await ReadUntilGoAwayAsync(established), "an established HTTP/2 connection gets GOAWAY when the drain begins");
        // The other one completes its handshake first: a GOAWAY in place of SETTINGS fails the client's call outright.
        await SendPrefaceAsync(fresh);
        Assert.Equal(Http2Settings, await ReadFrameTypeAsync(fresh));
        Assert.True(await ReadUntilGoAwayAsync(fresh), "a connection accepted before the drain gets GOAWAY after its SETTINGS");
    }

    private const byte Http2Settings = 0x4;
    private const byte Http2GoAway = 0x7;

    private static async Task SendPrefaceAsync(Socket socket)
    {
        // The client preface and an empty SETTINGS frame.
        byte[] preface = [.. "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8, 0, 0, 0, Http2Settings, 0, 0, 0, 0, 0];
        await socket.SendAsync(preface.AsMemory()).AsTask().WaitAsync(Timeout);
    }

    /// <summary>Reads one frame and returns its type; -1 when the connection ends first.</summary>
    private static async Task<int> ReadFrameTypeAsync(Socket socket)
    {
        var header = new byte[9];
        if (!await ReadExactlyAsync(socket, header))
        {
            return -1;
        }
        var payload = new byte[(header[0] << 16) | (header[1] << 8) | header[2]];
        return await ReadExactlyAsync(socket, payload) ? header[3] : -1;
    }

    private static async Task<bool> ReadUntilGoAwayAsync(Socket socket)
    {
        while (await ReadFrameTypeAsync(socket) is var type and not -1)
        {
            if (type == Http2GoAway)
            {
                return true;
            }
        }
        return false;
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, byte[] buffer)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read)).AsTask().WaitAsync(Timeout);
            if (n == 0)
            {
                return false;
            }
            read += n;
        }
        return true;
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
