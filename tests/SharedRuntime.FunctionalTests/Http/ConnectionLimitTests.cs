using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Http;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// The bound on open client connections (<c>--max-connections</c>): a client holding connections up to it gets every
/// further one closed at once, on every listener, while the connections already open go on being served; once it lets
/// some go, new connections are served again.
/// </summary>
public sealed class ConnectionLimitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Connections_past_the_bound_are_closed_at_once_and_those_open_are_still_served(bool relay)
    {
        await using var runtime = await TestRuntime.StartAsync(Resources.Tenant("holder", "holder-token") + Resources.Tenant("other", "other-token"),
            o => o with { MaxConnections = 4, InvokeRelay = relay });
        var limit = runtime.App.Services.GetRequiredService<ConnectionLimit>();
        var port = runtime.HttpAddress.Port;
        var sockets = new List<Socket>();
        try
        {
            // Another tenant's connection, open before the flood; then the holder's three, idle.
            var other = await ConnectAsync(port, sockets);
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(other, "/v1.0/healthz", "other-token"));
            for (var i = 0; i < 3; i++)
            {
                await ConnectAsync(port, sockets);
            }
            await Eventually.TrueAsync(() => Task.FromResult(limit.Open == 4), Timeout, "four connections counted");

            // Past the bound: closed before anything is read, on the HTTP port and the gRPC port alike.
            var refused = await ConnectAsync(port, sockets);
            Assert.Equal("", await AskAsync(refused, "/v1.0/healthz", "holder-token"));
            var refusedGrpc = await ConnectAsync(runtime.GrpcAddress.Port, sockets);
            Assert.Equal(0, await ReadAsync(refusedGrpc, new byte[64]));
            Assert.Equal(4, limit.Open);

            // The connection open before is served as before.
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(other, "/v1.0/healthz", "other-token"));

            // The holder lets two go: new connections are served again.
            sockets[1].Dispose();
            sockets[2].Dispose();
            await Eventually.TrueAsync(() => Task.FromResult(limit.Open == 2), Timeout, "closed connections uncounted");
            // Both gauges are exported. (Their values are not compared here: in this test process other runtimes export
            // gauges of the same names.)
            using (var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{runtime.Options.MetricsPort}"), Timeout = Timeout })
            {
                var metrics = await scraper.GetStringAsync("/metrics");
                Assert.Contains("\nsharedruntime_connections_max", metrics);
                Assert.Contains("\nsharedruntime_connections_open", metrics);
            }
            using var client = new HttpClient { BaseAddress = runtime.HttpAddress, Timeout = Timeout };
            Assert.Equal(HttpStatusCode.NoContent, (await client.GetAsync("/v1.0/healthz")).StatusCode);
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    private static async Task<Socket> ConnectAsync(int port, List<Socket> sockets)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        sockets.Add(socket);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)).WaitAsync(Timeout);
        return socket;
    }

    /// <summary>Sends a GET and reads the answer's head; empty when the runtime closed the connection instead.</summary>
    private static async Task<string> AskAsync(Socket socket, string path, string token)
    {
        try
        {
            await socket.SendAsync(Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: runtime\r\ndapr-api-token: {token}\r\n\r\n")).WaitAsync(Timeout);
        }
        catch (SocketException)
        {
            return ""; // reset already
        }
        var head = new StringBuilder();
        var buffer = new byte[4096];
        while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var read = await ReadAsync(socket, buffer);
            if (read == 0)
            {
                break;
            }
            head.Append(Encoding.ASCII.GetString(buffer, 0, read));
        }
        var text = head.ToString();
        // Read the rest of the answer (its body, by Content-Length), so the next request on the connection starts clean.
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (end >= 0)
        {
            var lengthLine = text[..end].Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            var length = lengthLine is null ? 0 : int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            for (var have = Encoding.ASCII.GetByteCount(text) - end - 4; have < length;)
            {
                var read = await ReadAsync(socket, buffer);
                if (read == 0)
                {
                    break;
                }
                have += read;
            }
        }
        return text;
    }

    /// <summary>Reads what comes; 0 when the runtime closed the connection (or reset it).</summary>
    private static async Task<int> ReadAsync(Socket socket, byte[] buffer)
    {
        try
        {
            return await socket.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Timeout);
        }
        catch (SocketException)
        {
            return 0;
        }
    }
}
