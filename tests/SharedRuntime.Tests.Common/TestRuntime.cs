using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Host;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Tests;

/// <summary>
/// A real runtime on loopback: Kestrel on free ports, resources in a temporary folder that tests can rewrite while it
/// runs. Tests talk to it over HTTP like any app would.
/// </summary>
public sealed class TestRuntime : IAsyncDisposable
{
    private readonly List<HttpClient> _clients = [];

    private TestRuntime(WebApplication app, RuntimeOptions options, string resourcesPath)
    {
        App = app;
        Options = options;
        ResourcesPath = resourcesPath;
    }

    public WebApplication App { get; }
    public RuntimeOptions Options { get; }
    public string ResourcesPath { get; }
    public Uri HttpAddress => new($"http://127.0.0.1:{Options.DaprHttpPort}");
    public Uri GrpcAddress => new($"http://127.0.0.1:{Options.DaprGrpcPort}");
    public Uri MetricsAddress => new($"http://127.0.0.1:{Options.MetricsPort}");
    public RuntimeConfiguration Configuration => App.Services.GetRequiredService<RuntimeConfiguration>();

    /// <summary>Starts a runtime whose resource folder holds <paramref name="files"/> (file name to YAML).</summary>
    public static async Task<TestRuntime> StartAsync(IReadOnlyDictionary<string, string> files, Func<RuntimeOptions, RuntimeOptions>? configure = null,
        Action<IServiceCollection>? services = null)
    {
        var folder = Directory.CreateTempSubdirectory("sharedruntime-test-").FullName;
        foreach (var (name, yaml) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, name), yaml);
        }
        // Free ports are found by binding and releasing them; another test may take one in between, so a failed
        // bind is retried with new ports.
        for (var attempt = 1; ; attempt++)
        {
            var ports = FreePorts(3);
            var options = new RuntimeOptions
            {
                ResourcesPaths = [folder],
                StateDir = folder + "-state",
                DaprHttpPort = ports[0],
                DaprGrpcPort = ports[1],
                MetricsPort = ports[2],
                LogLevel = "warn",
                // Without SO_REUSEPORT a port another test took fails the bind and is retried below, instead of
                // two runtimes silently sharing it.
                ReusePort = false,
                // Two relay loops on any machine (the loops are the process's; the first runtime sets them): calls
                // whose caller and app connection sit on different loops stay covered where one loop is the default.
                RelayLoops = 2,
            };
            options = configure?.Invoke(options) ?? options;
            var app = RuntimeApplication.Build(options, services);
            try
            {
                await RuntimeApplication.StartAsync(app).WaitAsync(TimeSpan.FromSeconds(30));
                return new TestRuntime(app, options, folder);
            }
            catch (Exception ex) when (attempt < 5 && IsAddressInUse(ex))
            {
                await app.DisposeAsync();
            }
            catch
            {
                await app.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>
    /// Starts a runtime in kubernetes mode reading its resources from <paramref name="api"/> through a kubeconfig;
    /// returns once the first full sync applied.
    /// </summary>
    public static Task<TestRuntime> StartKubernetesAsync(Kubernetes.FakeKubernetesApi api, Func<RuntimeOptions, RuntimeOptions>? configure = null) =>
        StartAsync(new Dictionary<string, string> { ["kubeconfig"] = api.Kubeconfig() }, options =>
        {
            var kubernetes = options with
            {
                Mode = RuntimeMode.Kubernetes,
                Kubeconfig = Path.Combine(options.ResourcesPaths[0], "kubeconfig"),
                ListenAddresses = ["127.0.0.1"],
            };
            return configure?.Invoke(kubernetes) ?? kubernetes;
        });

    internal static bool IsAddressInUse(Exception ex) =>
        ex is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse } ||
        (ex.InnerException is not null && IsAddressInUse(ex.InnerException)) ||
        ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase);

    public static Task<TestRuntime> StartAsync(string yaml, Func<RuntimeOptions, RuntimeOptions>? configure = null) =>
        StartAsync(new Dictionary<string, string> { ["resources.yaml"] = yaml }, configure);

    /// <summary>An HTTP client for the Dapr HTTP API that sends <paramref name="token"/> as dapr-api-token (none when null).</summary>
    public HttpClient Client(string? token)
    {
        var client = new HttpClient { BaseAddress = HttpAddress, Timeout = TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Add("dapr-api-token", token);
        }
        _clients.Add(client);
        return client;
    }

    /// <summary>Writes (or replaces) a resource file the way an editor or a ConfigMap update would: atomically.</summary>
    public async Task WriteResourceAsync(string fileName, string yaml)
    {
        var temp = Path.Combine(ResourcesPath, $".{fileName}.tmp");
        await File.WriteAllTextAsync(temp, yaml);
        File.Move(temp, Path.Combine(ResourcesPath, fileName), overwrite: true);
    }

    public void DeleteResource(string fileName) => File.Delete(Path.Combine(ResourcesPath, fileName));

    /// <summary>Waits until a new configuration generation is in place and <paramref name="condition"/> holds.</summary>
    public Task WaitForConfigurationAsync(Func<RuntimeSnapshot, bool> condition, TimeSpan? timeout = null) =>
        Eventually.TrueAsync(() => Task.FromResult(condition(Configuration.Current)), timeout ?? TimeSpan.FromSeconds(10));

    public static int[] FreePorts(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        foreach (var listener in listeners)
        {
            listener.Start();
        }
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners)
        {
            listener.Stop();
        }
        return ports;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10))) { await App.StopAsync(stop.Token); }
        await App.DisposeAsync();
        foreach (var path in new[] { ResourcesPath, Options.StateDir! })
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }
}

/// <summary>Waiting on a condition with a deadline instead of sleeping.</summary>
public static class Eventually
{
    public static async Task TrueAsync(Func<Task<bool>> condition, TimeSpan timeout, string? because = null)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            if (await condition())
            {
                return;
            }
            try
            {
                await Task.Delay(25, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"condition not met within {timeout.TotalSeconds}s{(because is null ? "" : ": " + because)}");
            }
        }
    }
}
