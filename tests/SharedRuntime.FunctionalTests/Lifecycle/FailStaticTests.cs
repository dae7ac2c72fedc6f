using System.Net;

namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>A restart whose resources cannot be read starts from the last configuration that applied.</summary>
public sealed class FailStaticTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-failstatic-").FullName;

    [Fact]
    public async Task RestartWithTheResourceFolderGoneServesTheCachedConfiguration()
    {
        var resources = Path.Combine(_folder, "resources");
        var state = Path.Combine(_folder, "state");
        Directory.CreateDirectory(resources);
        await File.WriteAllTextAsync(Path.Combine(resources, "app.yaml"),
            Resources.Tenant("static-app", "static-token") + Resources.Component("store", "state.in-memory"));
        string[] args = ["--resources-path", resources, "--state-dir", state, "--reuse-port", "false"];

        await using (var first = await RuntimeProcess.StartReadyAsync(args))
        {
            Assert.Equal(HttpStatusCode.OK, await MetadataStatusAsync(first.HttpAddress));
            first.Terminate();
            Assert.Equal(0, await first.WaitForExitAsync(Timeout));
        }
        var cache = Assert.Single(Directory.GetFiles(state, "*.json"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(cache));
        }

        Directory.Delete(resources, recursive: true);
        await using var second = await RuntimeProcess.StartReadyAsync(args);
        Assert.Contains("Serving the last good configuration", second.Log);
        Assert.Equal(HttpStatusCode.OK, await MetadataStatusAsync(second.HttpAddress));
        using var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{second.MetricsPort}"), Timeout = Timeout };
        await Eventually.TrueAsync(async () =>
            (await scraper.GetStringAsync("/metrics")).Split('\n').Any(l => l.StartsWith("sharedruntime_config_fail_static", StringComparison.Ordinal) && l.TrimEnd().EndsWith(" 1", StringComparison.Ordinal)),
            Timeout, "sharedruntime_config_fail_static 1");
    }

    [Fact]
    public async Task WithoutACacheAMissingResourceFolderStillRefusesToStart()
    {
        var ports = TestRuntime.FreePorts(3);
        await using var runtime = RuntimeProcess.Start(ports[0], ports[1], ports[2],
            "--resources-path", Path.Combine(_folder, "missing"), "--state-dir", Path.Combine(_folder, "empty-state"), "--reuse-port", "false");
        Assert.Equal(1, await runtime.WaitForExitAsync(Timeout));
        Assert.Contains("refusing to start", runtime.Log);
    }

    private static async Task<HttpStatusCode> MetadataStatusAsync(Uri address)
    {
        using var client = new HttpClient { BaseAddress = address, Timeout = Timeout };
        client.DefaultRequestHeaders.Add("dapr-api-token", "static-token");
        using var response = await client.GetAsync("/v1.0/metadata");
        return response.StatusCode;
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
