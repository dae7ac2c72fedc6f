using System.Diagnostics;
using System.Globalization;

namespace SharedRuntime.ComponentTests.Servers;

/// <summary>A nats-server of the test's own with JetStream on, on a free loopback port, storing in a temporary folder.</summary>
public sealed class NatsServer : IAsyncLifetime
{
    private readonly List<string> _output = [];
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sharedruntime-nats-");
    private Process? _process;

    public int Port { get; private set; }

    /// <summary>Why the server cannot run here, or null.</summary>
    public string? Missing { get; private set; }

    public string Url => $"nats://127.0.0.1:{Port}";

    public async Task InitializeAsync()
    {
        var program = TestServers.FindOnPath("nats-server");
        if (program is null)
        {
            Missing = "nats-server not found on PATH";
            return;
        }
        for (var attempt = 0; attempt < 3; attempt++)
        {
            Port = TestServers.FreePort();
            _process?.Dispose();
            _process = TestServers.Start(program, ["-js", "-p", Port.ToString(CultureInfo.InvariantCulture), "-sd", _dir.FullName, "-a", "127.0.0.1"], _output);
            if (await TestServers.WaitForPortAsync(Port, _process, TestServers.StartTimeout))
            {
                return;
            }
        }
        throw new InvalidOperationException($"nats-server did not start: {TestServers.Tail(_output)}");
    }

    public async Task DisposeAsync()
    {
        await TestServers.KillAsync(_process);
        _process?.Dispose();
        _dir.Delete(recursive: true);
    }
}
