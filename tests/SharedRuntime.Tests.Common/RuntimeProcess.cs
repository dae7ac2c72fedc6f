using System.Diagnostics;

namespace SharedRuntime.Tests;

/// <summary>
/// The built runtime as a real process (<c>dotnet shared-runtime.dll</c> from beside the test assembly), for what only a
/// process shows: signals, exit codes, two processes on the same ports. Its log lines are kept for assertions.
/// </summary>
public sealed class RuntimeProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];

    private RuntimeProcess(Process process, int httpPort, int grpcPort, int metricsPort)
    {
        _process = process;
        HttpPort = httpPort;
        GrpcPort = grpcPort;
        MetricsPort = metricsPort;
        process.OutputDataReceived += (_, e) => Add(e.Data);
        process.ErrorDataReceived += (_, e) => Add(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;
    public int HttpPort { get; }
    public int GrpcPort { get; }
    public int MetricsPort { get; }
    public Uri HttpAddress => new($"http://127.0.0.1:{HttpPort}");
    public Uri GrpcAddress => new($"http://127.0.0.1:{GrpcPort}");
    public bool HasExited => _process.HasExited;

    /// <summary>Everything the process wrote so far, stdout and stderr together.</summary>
    public string Log
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    /// <summary>Starts the runtime on the given ports with <paramref name="args"/> added; logs as plain text at info level.</summary>
    public static RuntimeProcess Start(int httpPort, int grpcPort, int metricsPort, params string[] args) =>
        StartExecutable(null, httpPort, grpcPort, metricsPort, args);

    /// <summary>As <see cref="Start"/>, running <paramref name="executable"/> (a native build) instead when it is set.</summary>
    public static RuntimeProcess StartExecutable(string? executable, int httpPort, int grpcPort, int metricsPort, params string[] args)
    {
        var start = new ProcessStartInfo(executable ?? Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (executable is null)
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "shared-runtime.dll"));
        }
        foreach (var arg in new[] { "--dapr-http-port", $"{httpPort}", "--dapr-grpc-port", $"{grpcPort}", "--metrics-port", $"{metricsPort}", "--log-level", "info" }.Concat(args))
        {
            start.ArgumentList.Add(arg);
        }
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("SHAREDRUNTIME_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(name);
        }
        return new RuntimeProcess(Process.Start(start)!, httpPort, grpcPort, metricsPort);
    }

    /// <summary>
    /// Starts the runtime on free ports and waits until it is ready. A port another test took between picking and
    /// binding makes the process exit; it is started again on new ports.
    /// </summary>
    public static Task<RuntimeProcess> StartReadyAsync(params string[] args) => StartExecutableReadyAsync(null, args);

    /// <summary>As <see cref="StartReadyAsync"/>, running <paramref name="executable"/> (a native build) when it is set.</summary>
    public static async Task<RuntimeProcess> StartExecutableReadyAsync(string? executable, params string[] args)
    {
        for (var attempt = 1; ; attempt++)
        {
            var ports = TestRuntime.FreePorts(3);
            var process = StartExecutable(executable, ports[0], ports[1], ports[2], args);
            try
            {
                await process.WaitUntilReadyAsync();
                return process;
            }
            catch (InvalidOperationException) when (attempt < 5 && process.Log.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                await process.DisposeAsync();
            }
        }
    }

    /// <summary>Waits until a log line contains <paramref name="text"/>; fails early when the process exits first.</summary>
    public Task WaitForLogAsync(string text, TimeSpan? timeout = null) =>
        Eventually.TrueAsync(() =>
        {
            if (Log.Contains(text, StringComparison.Ordinal))
            {
                return Task.FromResult(true);
            }
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"the runtime exited with {_process.ExitCode} before logging '{text}':\n{Log}");
            }
            return Task.FromResult(false);
        }, timeout ?? TimeSpan.FromSeconds(30), $"log line '{text}'");

    /// <summary>Waits until the runtime has loaded its resources and listens.</summary>
    public Task WaitUntilReadyAsync() => WaitForLogAsync("Runtime ready");

    /// <summary>Sends SIGTERM, what an orchestrator sends to stop a process.</summary>
    public void Terminate()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", $"{Id}"]) { UseShellExecute = false })!;
        kill.WaitForExit(5000);
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {Id} failed with {kill.ExitCode}");
        }
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(deadline.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(deadline.Token);
        }
        _process.Dispose();
    }

    private void Add(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lines)
        {
            _lines.Add(line);
        }
    }
}
