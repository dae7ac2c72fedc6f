using System.Net;
using System.Net.Sockets;

namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>
/// Upgrading the runtime on a node: a new process takes the listening sockets over from the running one (through the
/// hand-off socket in the state folder), the old one drains and exits. None of this depends on
/// <c>net.ipv4.tcp_migrate_req</c>: the accept queues are never closed.
/// </summary>
[Collection(ProcessTestsCollection.Name)]
public sealed class HandoverTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-handover-").FullName;

    [Fact]
    public async Task NoRequestFailsWhileANewProcessTakesOverTheSamePorts()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // listener hand-off is Linux only
        }
        var resources = Path.Combine(_folder, "resources");
        Directory.CreateDirectory(resources);
        await File.WriteAllTextAsync(Path.Combine(resources, "app.yaml"),
            Resources.Tenant("handover-app", "handover-token", "requestsPerSecond: 1000000\nburst: 1000000\nmaxConcurrency: 1000") +
            Resources.Component("store", "state.in-memory"));
        string[] args = ["--resources-path", resources, "--state-dir", Path.Combine(_folder, "state"), "--dapr-graceful-shutdown-seconds", "10"];

        await using var old = await RuntimeProcess.StartReadyAsync(args);
        await using var load = SteadyLoad.Start(old.HttpAddress, old.GrpcAddress, "handover-token", "store");
        await load.WaitForSuccessesAsync(100, TimeSpan.FromSeconds(20));

        await using var next = RuntimeProcess.Start(old.HttpPort, old.GrpcPort, old.MetricsPort, args);
        await next.WaitUntilReadyAsync();
        Assert.Contains($"Took over 3 listeners", next.Log);
        await old.WaitForLogAsync($"over to process {next.Id}");
        await load.WaitForSuccessesAsync(100, TimeSpan.FromSeconds(20));

        old.Terminate();
        Assert.Equal(0, await old.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("Draining", old.Log);
        Assert.Contains("Drain complete", old.Log);

        // Only the new process listens now; the load keeps succeeding on it.
        await load.WaitForSuccessesAsync(200, TimeSpan.FromSeconds(20));
        await load.DisposeAsync();
        Assert.True(load.Failures.IsEmpty, $"{load.Failures.Count} requests failed: {string.Join(" | ", load.Failures.Take(10))}");
        Assert.False(next.HasExited);
    }

    [Fact]
    public async Task NoRequestFailsOverFiveHandoversInARow()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // listener hand-off is Linux only
        }
        var resources = Path.Combine(_folder, "resources");
        Directory.CreateDirectory(resources);
        await File.WriteAllTextAsync(Path.Combine(resources, "app.yaml"),
            Resources.Tenant("handover-app", "handover-token", "requestsPerSecond: 1000000\nburst: 1000000\nmaxConcurrency: 1000") +
            Resources.Component("store", "state.in-memory"));
        string[] args = ["--resources-path", resources, "--state-dir", Path.Combine(_folder, "state"), "--dapr-graceful-shutdown-seconds", "10"];

        var current = await RuntimeProcess.StartReadyAsync(args);
        try
        {
            await using var load = SteadyLoad.Start(current.HttpAddress, current.GrpcAddress, "handover-token", "store", grpcWorkers: 6, grpcChannels: 3);
            await load.WaitForSuccessesAsync(100, TimeSpan.FromSeconds(20));
            for (var handover = 1; handover <= 5; handover++)
            {
                var next = RuntimeProcess.Start(current.HttpPort, current.GrpcPort, current.MetricsPort, args);
                try
                {
                    await next.WaitUntilReadyAsync();
                    Assert.Contains("Took over 3 listeners", next.Log);
                    await load.WaitForSuccessesAsync(50, TimeSpan.FromSeconds(20));
                    current.Terminate();
                    Assert.Equal(0, await current.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                    Assert.Contains("Drain complete", current.Log);
                }
                finally
                {
                    await current.DisposeAsync();
                    current = next;
                }
                await load.WaitForSuccessesAsync(50, TimeSpan.FromSeconds(20));
                Assert.True(load.Failures.IsEmpty, $"handover {handover}: {load.Failures.Count} requests failed: {string.Join(" | ", load.Failures.Take(10))}");
            }
            await load.DisposeAsync();
            Assert.True(load.Failures.IsEmpty, $"{load.Failures.Count} requests failed: {string.Join(" | ", load.Failures.Take(10))}");
            Assert.False(current.HasExited);
        }
        finally
        {
            await current.DisposeAsync();
        }
    }

    [Fact]
    public async Task OnceItHasHandedOverTheOldProcessClosesKeepAliveConnectionsBeforeAnySigterm()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // listener hand-off is Linux only
        }
        var args = await WriteResourcesAsync();
        await using var old = await RuntimeProcess.StartReadyAsync(args);
        using var client = new HttpClient(new SocketsHttpHandler { PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = old.HttpAddress,
            Timeout = TimeSpan.FromSeconds(20),
        };
        client.DefaultRequestHeaders.Add("dapr-api-token", "handover-token");
        using (var before = await client.GetAsync("/v1.0/metadata"))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
            Assert.False(before.Headers.ConnectionClose ?? false);
        }

        await using var next = RuntimeProcess.Start(old.HttpPort, old.GrpcPort, old.MetricsPort, args);
        await next.WaitUntilReadyAsync();
        await old.WaitForLogAsync($"over to process {next.Id}");

        // The kept-alive connection still reaches the old process, which answers and closes it; the next request
        // opens a connection that the new process accepts.
        using (var last = await client.GetAsync("/v1.0/metadata"))
        {
            Assert.Equal(HttpStatusCode.OK, last.StatusCode);
            Assert.True(last.Headers.ConnectionClose, "a keep-alive response of a process that handed over closes its connection");
        }
        using (var after = await client.GetAsync("/v1.0/healthz"))
        {
            Assert.Equal(HttpStatusCode.NoContent, after.StatusCode);
        }
        Assert.False(old.HasExited);
        old.Terminate();
        Assert.Equal(0, await old.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("Drain complete", old.Log);
    }

    [Fact]
    public async Task AStaleHandoffSocketFileDoesNotHoldUpTheStart()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // listener hand-off is Linux only
        }
        var args = await WriteResourcesAsync();
        var state = Path.Combine(_folder, "state");
        Directory.CreateDirectory(state);
        // A socket file nobody listens on any more, as a process killed with SIGKILL leaves it (.NET deletes the file
        // it bound when the socket is disposed, so the socket is bound under another name first).
        using (var gone = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            gone.Bind(new UnixDomainSocketEndPoint(Path.Combine(state, "gone.sock")));
            File.Move(Path.Combine(state, "gone.sock"), Path.Combine(state, "handoff.sock"));
        }
        Assert.True(File.Exists(Path.Combine(state, "handoff.sock")));

        await using var runtime = await RuntimeProcess.StartReadyAsync(args);
        Assert.Contains("No runtime answered", runtime.Log);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(state, "handoff.sock")));
        using var probe = new HttpClient { BaseAddress = runtime.HttpAddress, Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal(HttpStatusCode.NoContent, (await probe.GetAsync("/v1.0/healthz")).StatusCode);
    }

    [Fact]
    public async Task ARuntimeOnOtherPortsIsNotHandedTheListeners()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // listener hand-off is Linux only
        }
        var args = await WriteResourcesAsync();
        await using var first = await RuntimeProcess.StartReadyAsync(args);

        // Same state folder, so it asks the first one, but other ports: the first one keeps its listeners and serves on.
        await using var second = await RuntimeProcess.StartReadyAsync(args);
        Assert.Contains("not taken over", second.Log);
        Assert.DoesNotContain("Handed the listeners", first.Log);
        using var probe = new HttpClient { BaseAddress = first.HttpAddress, Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal(HttpStatusCode.NoContent, (await probe.GetAsync("/v1.0/healthz")).StatusCode);
    }

    [Fact]
    public async Task WithHandoffOffTheNewProcessBindsThePortsWithReusePort()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // SO_REUSEPORT is Linux only
        }
        string[] args = [.. await WriteResourcesAsync(), "--handoff-socket", "none"];
        await using var old = await RuntimeProcess.StartReadyAsync(args);
        await using var next = RuntimeProcess.Start(old.HttpPort, old.GrpcPort, old.MetricsPort, args);
        await next.WaitUntilReadyAsync();
        Assert.DoesNotContain("Took over", next.Log);
        Assert.False(File.Exists(Path.Combine(_folder, "state", "handoff.sock")));

        old.Terminate();
        Assert.Equal(0, await old.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        using var probe = new HttpClient { BaseAddress = next.HttpAddress, Timeout = TimeSpan.FromSeconds(20) };
        Assert.Equal(HttpStatusCode.NoContent, (await probe.GetAsync("/v1.0/healthz")).StatusCode);
    }

    private async Task<string[]> WriteResourcesAsync()
    {
        var resources = Path.Combine(_folder, "resources");
        Directory.CreateDirectory(resources);
        await File.WriteAllTextAsync(Path.Combine(resources, "app.yaml"),
            Resources.Tenant("handover-app", "handover-token") + Resources.Component("store", "state.in-memory"));
        return ["--resources-path", resources, "--state-dir", Path.Combine(_folder, "state"), "--dapr-graceful-shutdown-seconds", "10"];
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
