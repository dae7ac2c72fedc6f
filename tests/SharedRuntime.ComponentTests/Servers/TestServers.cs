using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace SharedRuntime.ComponentTests.Servers;

/// <summary>Helpers for tests that run their own server processes on free loopback ports.</summary>
internal static class TestServers
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(20);

    /// <summary>CI must run every test: a missing server fails there, and is skipped with a message elsewhere.</summary>
    public static bool InCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public static void Require(string server, string? missing)
    {
        if (missing is null)
        {
            return;
        }
        var message = $"{server} is not available ({missing}); install it with scripts/install-test-servers.sh";
        if (InCi)
        {
            throw new InvalidOperationException(message + " (CI=true: missing servers fail the run)");
        }
        Skip.If(true, message);
    }

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static string? FindOnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/usr/local/sbin"])
            .Select(dir => Path.Combine(dir, program))
            .FirstOrDefault(File.Exists);

    public static bool IsRoot => Environment.UserName == "root";

    /// <summary>Starts a process whose output is kept (the last lines explain a failed start).</summary>
    public static Process Start(string program, IEnumerable<string> arguments, List<string> output)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }
        var process = new Process { StartInfo = info };
        DataReceivedEventHandler keep = (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (output)
                {
                    output.Add(e.Data);
                }
            }
        };
        process.OutputDataReceived += keep;
        process.ErrorDataReceived += keep;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Runs a command to its end; throws with its output when it fails.</summary>
    public static async Task RunAsync(string program, params string[] arguments)
    {
        var output = new List<string>();
        using var process = Start(program, arguments, output);
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited with {process.ExitCode}: {Tail(output)}");
        }
    }

    /// <summary>Waits until the port accepts connections; false when the process exited or the time ran out.</summary>
    public static async Task<bool> WaitForPortAsync(int port, Process process, TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout && !process.HasExited)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port).WaitAsync(TimeSpan.FromSeconds(1));
                return true;
            }
            catch (Exception ex) when (ex is SocketException or TimeoutException)
            {
                await Task.Delay(50);
            }
        }
        return false;
    }

    public static string Tail(List<string> output)
    {
        lock (output)
        {
            return string.Join('\n', output.TakeLast(15));
        }
    }

    public static async Task KillAsync(Process? process)
    {
        if (process is null || process.HasExited)
        {
            return;
        }
        process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
    }
}
