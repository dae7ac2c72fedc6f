using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace SharedRuntime.ComponentTests.Servers;

/// <summary>
/// A PostgreSQL server of the test's own: initdb into a temporary folder, then <c>postgres</c> on a free loopback
/// port with trust authentication and no fsync. Runs as the <c>postgres</c> user when the tests run as root.
/// </summary>
public sealed class PostgreSqlServer : IAsyncLifetime
{
    private const string RunAsUser = "postgres";
    private readonly List<string> _output = [];
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sharedruntime-pg-");
    private string? _bin;
    private Process? _process;

    public int Port { get; private set; }

    /// <summary>Why the server cannot run here, or null.</summary>
    public string? Missing { get; private set; }

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=5";

    private string DataDir => Path.Combine(_dir.FullName, "data");

    public async Task InitializeAsync()
    {
        _bin = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(dir => Path.Combine(dir, "bin"))
                .Where(bin => File.Exists(Path.Combine(bin, "postgres")))
                .OrderByDescending(bin => int.TryParse(Path.GetFileName(Path.GetDirectoryName(bin)), out var major) ? major : 0)
                .FirstOrDefault()
            : null;
        if (_bin is null)
        {
            Missing = "no /usr/lib/postgresql/*/bin/postgres";
            return;
        }
        if (TestServers.IsRoot)
        {
            try
            {
                await TestServers.RunAsync("id", "-u", RunAsUser);
            }
            catch (InvalidOperationException)
            {
                Missing = $"running as root and there is no '{RunAsUser}' user to run PostgreSQL as";
                return;
            }
            await TestServers.RunAsync("chown", "-R", RunAsUser, _dir.FullName);
        }
        await RunAsync(Path.Combine(_bin, "initdb"), "-D", DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync");
        for (var attempt = 0; attempt < 3; attempt++)
        {
            Port = TestServers.FreePort();
            if (await TryStartAsync())
            {
                return;
            }
        }
        throw new InvalidOperationException($"postgres did not start: {TestServers.Tail(_output)}");
    }

    private async Task<bool> TryStartAsync()
    {
        _process?.Dispose();
        _process = Start(Path.Combine(_bin!, "postgres"),
            "-D", DataDir, "-p", Port.ToString(CultureInfo.InvariantCulture), "-k", _dir.FullName,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");
        if (!await TestServers.WaitForPortAsync(Port, _process, TestServers.StartTimeout))
        {
            return false;
        }
        // The port opens before the server accepts sessions ("the database system is starting up").
        var waited = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(ConnectionString);
                await connection.OpenAsync();
                return true;
            }
            catch (NpgsqlException) when (waited.Elapsed < TestServers.StartTimeout && !_process.HasExited)
            {
                await Task.Delay(100);
            }
        }
    }

    private Process Start(string program, params string[] arguments) => TestServers.IsRoot
        ? TestServers.Start("runuser", ["-u", RunAsUser, "--", program, .. arguments], _output)
        : TestServers.Start(program, arguments, _output);

    private Task RunAsync(string program, params string[] arguments) => TestServers.IsRoot
        ? TestServers.RunAsync("runuser", ["-u", RunAsUser, "--", program, .. arguments])
        : TestServers.RunAsync(program, arguments);

    public async Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            try
            {
                await RunAsync(Path.Combine(_bin!, "pg_ctl"), "-D", DataDir, "stop", "-m", "immediate", "-w");
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
            {
                // Fall through to killing the process tree.
            }
            await TestServers.KillAsync(_process);
        }
        _process?.Dispose();
        _dir.Delete(recursive: true);
    }
}
