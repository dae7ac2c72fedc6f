using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Http;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Http;

/// <summary>
/// The bound on open client connections (<c>--max-connections</c>). Connections busy with requests up to it get every
/// further one closed at once, on every listener, while those open go on being served. Idle connections do not keep
/// anyone out: at the bound the idle connection of the address holding the most is closed for the new one.
/// </summary>
public sealed class ConnectionLimitTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private static readonly IPAddress OtherAddress = IPAddress.Parse("127.0.0.2");

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Connections_past_a_bound_of_busy_ones_are_closed_at_once_and_those_open_are_still_served(bool relay)
    {
        using var hungApp = HungApp();
        await using var runtime = await StartAsync(hungApp, maxConnections: 4, relay);
        var limit = runtime.App.Services.GetRequiredService<ConnectionLimit>();
        var port = runtime.HttpAddress.Port;
        var sockets = new List<Socket>();
        try
        {
            // Four connections, each with a call in flight that its app never answers.
            for (var i = 0; i < 4; i++)
            {
                var busy = await ConnectAsync(port, sockets);
                await busy.SendAsync(Encoding.ASCII.GetBytes("GET /v1.0/invoke/holder/method/wait HTTP/1.1\r\nHost: runtime\r\ndapr-api-token: holder-token\r\n\r\n"));
            }
            await Eventually.TrueAsync(() => Task.FromResult(limit.Open == 4), Timeout, "four connections counted");
            // Past the time after which an idle connection could be closed for a new one: these are busy, so none is.
            await Task.Delay(ConnectionLimit.MinIdle + TimeSpan.FromMilliseconds(200));

            // Past the bound: closed before anything is read, on the HTTP port and the gRPC port alike, from any address.
            var refused = await ConnectAsync(port, sockets, OtherAddress);
            Assert.Equal("", await AskAsync(refused, "/v1.0/healthz", "other-token"));
            var refusedGrpc = await ConnectAsync(runtime.GrpcAddress.Port, sockets);
            Assert.Equal(0, await ReadAsync(refusedGrpc, new byte[64]));
            Assert.Equal(4, limit.Open);

            // The busy ones were not touched: each is still waiting for its answer.
            foreach (var busy in sockets.Take(4))
            {
                Assert.False(busy.Poll(0, SelectMode.SelectRead), "a busy connection was closed");
            }

            // The holder gives two calls up: their connections close, and new connections are served again.
            sockets[0].Dispose();
            sockets[1].Dispose();
            await Eventually.TrueAsync(() => Task.FromResult(limit.Open == 2), Timeout, "closed connections uncounted");
            // The gauges are exported. (Their values are not compared here: in this test process other runtimes export
            // gauges of the same names.)
            using (var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{runtime.Options.MetricsPort}"), Timeout = Timeout })
            {
                var metrics = await scraper.GetStringAsync("/metrics");
                Assert.Contains("\nsharedruntime_connections_max", metrics);
                Assert.Contains("\nsharedruntime_connections_open", metrics);
                Assert.Contains("\nsharedruntime_connections_closed_idle", metrics);
            }
            var other = await ConnectAsync(port, sockets, OtherAddress);
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(other, "/v1.0/healthz", "other-token"));
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_client_holding_idle_connections_up_to_the_bound_keeps_no_other_tenant_out(bool relay)
    {
        using var hungApp = HungApp();
        await using var runtime = await StartAsync(hungApp, maxConnections: 6, relay);
        var limit = runtime.App.Services.GetRequiredService<ConnectionLimit>();
        var port = runtime.HttpAddress.Port;
        var sockets = new List<Socket>();
        try
        {
            // The other tenant's app is on a second address, with one connection it uses now and then.
            var otherFirst = await ConnectAsync(port, sockets, OtherAddress);
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(otherFirst, "/v1.0/healthz", "other-token"));

            // The holder fills the bound from its own address: a connection it never used, two used once, one with a
            // call in flight, and one on the gRPC port it never used. All but the busy one are idle.
            var unused = await ConnectAsync(port, sockets);
            var usedOnce = new List<Socket>();
            for (var i = 0; i < 2; i++)
            {
                var connection = await ConnectAsync(port, sockets);
                Assert.StartsWith("HTTP/1.1 204", await AskAsync(connection, "/v1.0/healthz", "holder-token"));
                usedOnce.Add(connection);
            }
            var busy = await ConnectAsync(port, sockets);
            await busy.SendAsync(Encoding.ASCII.GetBytes("GET /v1.0/invoke/holder/method/wait HTTP/1.1\r\nHost: runtime\r\ndapr-api-token: holder-token\r\n\r\n"));
            var unusedGrpc = await ConnectAsync(runtime.GrpcAddress.Port, sockets);
            await Eventually.TrueAsync(() => Task.FromResult(limit.Open == 6), Timeout, "six connections counted");
            await Task.Delay(ConnectionLimit.MinIdle + TimeSpan.FromMilliseconds(200));

            // Another tenant's new connections are served, on both ports: each takes the place of an idle connection
            // of the holder's, the address holding the most, not of the other tenant's own idle one.
            var otherSecond = await ConnectAsync(port, sockets, OtherAddress);
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(otherSecond, "/v1.0/healthz", "other-token"));
            using (var channel = GrpcChannel.ForAddress(runtime.GrpcAddress, new GrpcChannelOptions { HttpHandler = ConnectFrom(OtherAddress) }))
            {
                var metadata = await new Autogen.Dapr.DaprClient(channel).GetMetadataAsync(new Autogen.GetMetadataRequest(),
                    new Metadata { { "dapr-api-token", "other-token" } }, deadline: DateTime.UtcNow.Add(Timeout));
                Assert.Equal("other", metadata.Id);
            }
            Assert.Equal(6, limit.Open);
            Assert.Equal(2, limit.ClosedIdle);
            Assert.StartsWith("HTTP/1.1 204", await AskAsync(otherFirst, "/v1.0/healthz", "other-token"));

            // The two closed were the holder's idle longest; its others, busy or idle, are open.
            await Eventually.TrueAsync(() => Task.FromResult(IsClosed(unused) && IsClosed(usedOnce[0])), Timeout, "the two idle longest closed");
            Assert.False(IsClosed(usedOnce[1]), "a connection idle for less time was closed");
            Assert.False(IsClosed(unusedGrpc), "a connection idle for less time was closed");
            Assert.False(IsClosed(busy), "the connection with a call in flight was closed");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }
    }

    /// <summary>An app that takes connections and never answers: a call to it keeps its connection busy.</summary>
    private static TcpListener HungApp()
    {
        var app = new TcpListener(IPAddress.Loopback, 0);
        app.Start();
        return app;
    }

    /// <summary>Tenant "holder", whose app is <paramref name="hungApp"/>, and tenant "other", under a bound of <paramref name="maxConnections"/>.</summary>
    private static Task<TestRuntime> StartAsync(TcpListener hungApp, int maxConnections, bool relay) => TestRuntime.StartAsync(
        Resources.Tenant("holder", "holder-token", appEndpoint: $"http://127.0.0.1:{((IPEndPoint)hungApp.LocalEndpoint).Port}") +
        Resources.Tenant("other", "other-token"),
        o => o with { MaxConnections = maxConnections, InvokeRelay = relay });

    private static async Task<Socket> ConnectAsync(int port, List<Socket> sockets, IPAddress? from = null)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        sockets.Add(socket);
        if (from is not null)
        {
            socket.Bind(new IPEndPoint(from, 0));
        }
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)).WaitAsync(Timeout);
        return socket;
    }

    /// <summary>True when the runtime closed the connection: readable, with nothing to read.</summary>
    private static bool IsClosed(Socket socket) => socket.Poll(0, SelectMode.SelectRead) && socket.Available == 0;

    /// <summary>A handler whose connections come from <paramref name="from"/>.</summary>
    private static SocketsHttpHandler ConnectFrom(IPAddress from) => new()
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(from, 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

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
