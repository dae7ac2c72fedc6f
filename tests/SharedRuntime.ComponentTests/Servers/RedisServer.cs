using System.Diagnostics;
using StackExchange.Redis;

namespace SharedRuntime.ComponentTests.Servers;

/// <summary>A redis-server of the test's own on a free loopback port, without persistence; stopped on dispose.</summary>
public sealed class RedisServer : IAsyncLifetime
{
    private readonly List<string> _output = [];
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sharedruntime-redis-");
    private string? _program;
    private Process? _process;

    public int Port { get; private set; }

    /// <summary>Why the server cannot run here, or null.</summary>
    public string? Missing { get; private set; }

    public string Host => $"127.0.0.1:{Port}";

    public async Task InitializeAsync()
    {
        _program = TestServers.FindOnPath("redis-server");
        if (_program is null)
        {
            Missing = "redis-server not found on PATH";
            return;
        }
        for (var attempt = 0; attempt < 3; attempt++)
        {
            Port = TestServers.FreePort();
            if (await TryStartAsync())
            {
                return;
            }
        }
        throw new InvalidOperationException($"redis-server did not start: {TestServers.Tail(_output)}");
    }

    /// <summary>Starts the server again on the same port (after <see cref="StopAsync"/>).</summary>
    public async Task StartAsync()
    {
        if (!await TryStartAsync())
        {
            throw new InvalidOperationException($"redis-server did not restart on port {Port}: {TestServers.Tail(_output)}");
        }
    }

    private async Task<bool> TryStartAsync()
    {
        _process?.Dispose();
        _process = TestServers.Start(_program!,
            ["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", _dir.FullName],
            _output);
        return await TestServers.WaitForPortAsync(Port, _process, TestServers.StartTimeout);
    }

    /// <summary>Kills the server process, as a crash would.</summary>
    public Task StopAsync() => TestServers.KillAsync(_process);

    /// <summary>Removes every key, so each test starts from an empty server.</summary>
    public async Task FlushAsync()
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions { EndPoints = { Host }, AllowAdmin = true });
        await connection.GetServer(Host).FlushAllDatabasesAsync();
    }

    public async Task DisposeAsync()
    {
        await TestServers.KillAsync(_process);
        _process?.Dispose();
        _dir.Delete(recursive: true);
    }
}
