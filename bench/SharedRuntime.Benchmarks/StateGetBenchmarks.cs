using System.Net;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharedRuntime.Host;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// One HTTP state GET end to end, in this process: the runtime on loopback (Kestrel, admission, metrics, routing, the
/// state building block, the in-memory store) against a bare Kestrel endpoint with the same server settings answering
/// the same bytes and headers. The client is a raw socket that sends pre-built request bytes and reads the answer into
/// a reused buffer: it allocates nothing per request, so the bytes MemoryDiagnoser counts (every thread of the
/// process) are the server's.
/// </summary>
[MemoryDiagnoser]
public class StateGetBenchmarks
{
    private const string Token = "bench-token";
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"order":42,"items":["a","b","c"]}""");

    private InProcessRuntime _runtime = null!;
    private WebApplication _bare = null!;
    private RawHttpClient _toRuntime = null!;
    private RawHttpClient _toBare = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        _runtime = await InProcessRuntime.StartAsync($$"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: store
            spec:
              type: state.in-memory
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: bench
            spec:
              apiToken: {value: {{Token}}}
              limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
            """);
        using (var http = new HttpClient { BaseAddress = _runtime.HttpAddress })
        {
            using var save = new HttpRequestMessage(HttpMethod.Post, "/v1.0/state/store")
            {
                Content = new StringContent("""[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]""", Encoding.UTF8, "application/json"),
            };
            save.Headers.Add("dapr-api-token", Token);
            (await http.SendAsync(save)).EnsureSuccessStatusCode();
        }
        _bare = await StartBareAsync();
        var barePort = new Uri(_bare.Urls.First()).Port;

        _toRuntime = RawHttpClient.Connect(_runtime.Options.DaprHttpPort, $"GET /v1.0/state/store/k HTTP/1.1\r\nHost: 127.0.0.1\r\ndapr-api-token: {Token}\r\n\r\n");
        _toBare = RawHttpClient.Connect(barePort, "GET /v1.0/state/store/k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        // Same status, body and headers from both (but Date); a mismatch would make the comparison meaningless.
        var runtimeAnswer = RawHttpClient.WithoutDate(_toRuntime.LearnAnswer());
        var bareAnswer = RawHttpClient.WithoutDate(_toBare.LearnAnswer());
        if (runtimeAnswer != bareAnswer)
        {
            throw new InvalidOperationException($"the answers differ:\n{runtimeAnswer}\n---\n{bareAnswer}");
        }
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        _toRuntime.Dispose();
        _toBare.Dispose();
        await _bare.DisposeAsync();
        await _runtime.DisposeAsync();
    }

    [Benchmark(Baseline = true, Description = "bare Kestrel, same bytes")]
    public int Bare() => _toBare.RoundTrip();

    [Benchmark(Description = "runtime state GET")]
    public int Runtime() => _toRuntime.RoundTrip();

    /// <summary>The same answer as the runtime's (status, ETag, content type, length, body), with nothing in between.</summary>
    private static async Task<WebApplication> StartBareAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            RuntimeApplication.ConfigureServerLimits(kestrel, Configuration.TenantLimits.Defaults.MaxRequestBodyBytes);
            kestrel.Listen(IPAddress.Loopback, 0);
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
        await app.StartAsync();
        return app;
    }
}

/// <summary>
/// An HTTP/1.1 keep-alive client that allocates nothing per request: the request is pre-built bytes, the answer is
/// read into one reused buffer until its known length (learnt from the first answer: the same bytes every time, the
/// Date header having a fixed width).
/// </summary>
internal sealed class RawHttpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _request;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _answerLength;

    private RawHttpClient(Socket socket, byte[] request)
    {
        _socket = socket;
        _request = request;
    }

    public static RawHttpClient Connect(int port, string request)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        socket.Connect(IPAddress.Loopback, port);
        return new RawHttpClient(socket, Encoding.ASCII.GetBytes(request));
    }

    /// <summary>Sends one request and reads its whole answer (head and Content-Length bytes); returns the answer's text.</summary>
    public string LearnAnswer()
    {
        _socket.Send(_request);
        var read = 0;
        while (true)
        {
            read += _socket.Receive(_buffer.AsSpan(read));
            var text = Encoding.ASCII.GetString(_buffer, 0, read);
            var headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (headEnd < 0)
            {
                continue;
            }
            var lengthLine = text[..headEnd].Split("\r\n").First(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
            var length = headEnd + 4 + int.Parse(lengthLine["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
            if (read >= length)
            {
                if (!text.StartsWith("HTTP/1.1 200 ", StringComparison.Ordinal))
                {
                    throw new InvalidOperationException($"unexpected answer: {text}");
                }
                _answerLength = length;
                return text[..length];
            }
        }
    }

    public static string WithoutDate(string answer) =>
        string.Join("\r\n", answer.Split("\r\n").Where(l => !l.StartsWith("Date:", StringComparison.OrdinalIgnoreCase)).Order(StringComparer.Ordinal));

    public int RoundTrip()
    {
        _socket.Send(_request);
        var read = 0;
        while (read < _answerLength)
        {
            read += _socket.Receive(_buffer.AsSpan(read));
        }
        if (read != _answerLength || _buffer[9] != (byte)'2')
        {
            throw new InvalidOperationException($"unexpected answer: {Encoding.ASCII.GetString(_buffer, 0, read)}");
        }
        return read;
    }

    public void Dispose() => _socket.Dispose();
}

/// <summary>The runtime built as <see cref="RuntimeApplication"/> builds it, on free loopback ports, resources in a temporary folder.</summary>
internal sealed class InProcessRuntime : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _folder;

    private InProcessRuntime(WebApplication app, RuntimeOptions options, string folder)
    {
        _app = app;
        Options = options;
        _folder = folder;
    }

    public RuntimeOptions Options { get; }
    public Uri HttpAddress => new($"http://127.0.0.1:{Options.DaprHttpPort}");
    public Uri GrpcAddress => new($"http://127.0.0.1:{Options.DaprGrpcPort}");

    public static async Task<InProcessRuntime> StartAsync(string yaml)
    {
        var folder = Directory.CreateTempSubdirectory("sharedruntime-bench-").FullName;
        await File.WriteAllTextAsync(Path.Combine(folder, "resources.yaml"), yaml);
        var ports = FreePorts(3);
        var options = new RuntimeOptions
        {
            ResourcesPaths = [folder],
            StateDir = folder + "-state",
            DaprHttpPort = ports[0],
            DaprGrpcPort = ports[1],
            MetricsPort = ports[2],
            ListenAddresses = ["127.0.0.1"],
            LogLevel = "error",
            ReusePort = false,
            DrainDelayMilliseconds = 0,
            DrainLingerMilliseconds = 0,
        };
        var app = RuntimeApplication.Build(options);
        await RuntimeApplication.StartAsync(app);
        return new InProcessRuntime(app, options, folder);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
        if (Directory.Exists(_folder + "-state"))
        {
            Directory.Delete(_folder + "-state", recursive: true);
        }
    }

    private static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        listeners.ForEach(l => l.Start());
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        listeners.ForEach(l => l.Stop());
        return ports;
    }
}
