using System.Collections.Concurrent;
using Grpc.Core;
using Grpc.Net.Client;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>
/// A steady stream of state reads over HTTP/1.1 keep-alive connections and over HTTP/2 gRPC channels, as apps on a
/// node send them. Nothing is retried: every request that does not get its expected answer is a failure.
/// </summary>
internal sealed class SteadyLoad : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _workers = [];
    private readonly List<IDisposable> _clients = [];
    private long _httpSucceeded;
    private long _grpcSucceeded;

    public ConcurrentQueue<string> Failures { get; } = new();

    public long Succeeded => Interlocked.Read(ref _httpSucceeded) + Interlocked.Read(ref _grpcSucceeded);

    public long HttpSucceeded => Interlocked.Read(ref _httpSucceeded);

    public long GrpcSucceeded => Interlocked.Read(ref _grpcSucceeded);

    public static SteadyLoad Start(Uri http, Uri grpc, string token, string store, int httpWorkers = 4, int grpcWorkers = 4, int grpcChannels = 1)
    {
        var load = new SteadyLoad();
        for (var i = 0; i < httpWorkers; i++)
        {
            var client = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
            {
                BaseAddress = http,
                Timeout = TimeSpan.FromSeconds(20),
            };
            client.DefaultRequestHeaders.Add("dapr-api-token", token);
            load._clients.Add(client);
            load._workers.Add(Task.Run(() => load.HttpLoopAsync(client, $"/v1.0/state/{store}/handover-key")));
        }
        var grpcClients = new List<Autogen.Dapr.DaprClient>();
        for (var i = 0; i < grpcChannels; i++)
        {
            var channel = GrpcChannel.ForAddress(grpc);
            load._clients.Add(channel);
            grpcClients.Add(new Autogen.Dapr.DaprClient(channel));
        }
        for (var i = 0; i < grpcWorkers; i++)
        {
            var grpcClient = grpcClients[i % grpcClients.Count];
            load._workers.Add(Task.Run(() => load.GrpcLoopAsync(grpcClient, token, store)));
        }
        return load;
    }

    private async Task HttpLoopAsync(HttpClient client, string path)
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var response = await client.GetAsync(path);
                if (response.IsSuccessStatusCode)
                {
                    Interlocked.Increment(ref _httpSucceeded);
                }
                else
                {
                    Failures.Enqueue($"{Now} HTTP {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }
            }
            catch (Exception ex)
            {
                Failures.Enqueue($"{Now} HTTP {ex.GetType().Name}: {ex.Message} {ex.InnerException?.Message}");
            }
        }
    }

    private async Task GrpcLoopAsync(Autogen.Dapr.DaprClient client, string token, string store)
    {
        var headers = new Metadata { { "dapr-api-token", token } };
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await client.GetStateAsync(new Autogen.GetStateRequest { StoreName = store, Key = "handover-key" }, headers,
                    deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(20));
                Interlocked.Increment(ref _grpcSucceeded);
            }
            catch (RpcException ex)
            {
                // The time lines the failure up with the processes' logs; the client's exception says where it came from.
                Failures.Enqueue($"{Now} gRPC {ex.StatusCode}: {ex.Status.Detail} [{ex.Status.DebugException}]");
            }
        }
    }

    private static string Now => TimeProvider.System.GetUtcNow().ToString("HH:mm:ss.fff", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Waits until <paramref name="more"/> further requests have succeeded over each protocol.</summary>
    public Task WaitForSuccessesAsync(int more, TimeSpan timeout)
    {
        var http = HttpSucceeded + more;
        var grpc = GrpcSucceeded + more;
        return Eventually.TrueAsync(() => Task.FromResult(HttpSucceeded >= http && GrpcSucceeded >= grpc), timeout,
            $"{more} more successful requests over HTTP and gRPC; failures so far: {string.Join(" | ", Failures.Take(5))}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }
        await _stop.CancelAsync();
        await Task.WhenAll(_workers).WaitAsync(TimeSpan.FromSeconds(30));
        foreach (var client in _clients)
        {
            client.Dispose();
        }
    }
}
