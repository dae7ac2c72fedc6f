namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>Upgrading the runtime on a node: a new process binds the same ports, the old one drains and exits.</summary>
[Collection(ProcessTestsCollection.Name)]
public sealed class HandoverTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-handover-").FullName;

    [Fact]
    public async Task NoRequestFailsWhileANewProcessTakesOverTheSamePorts()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // SO_REUSEPORT handover is Linux only
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
            return; // SO_REUSEPORT handover is Linux only
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
