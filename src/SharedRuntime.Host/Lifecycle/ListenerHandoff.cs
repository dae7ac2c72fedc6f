using System.Net;
using System.Net.Sockets;
using System.Text;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Passes the listening sockets from the running runtime process to the one replacing it, over a Unix domain socket
/// (<see cref="RuntimeOptions.EffectiveHandoffSocket"/>), so the accept queues are never closed and no connection waiting
/// in them is reset, whatever <c>net.ipv4.tcp_migrate_req</c> says.
/// </summary>
/// <remarks>
/// <para>Before Kestrel binds, a starting process connects to the socket file and names the endpoints it will listen on.
/// The running process, if it listens on exactly those, sends its listening sockets (<c>SCM_RIGHTS</c>) and keeps
/// accepting until the new process confirms that Kestrel has started on them (a new process that fails to start never
/// confirms, and the running one keeps its listeners); then it stops accepting without closing them
/// (<see cref="ListenSockets.HandOver"/>) and begins its drain: readiness false, <c>Connection: close</c> on HTTP/1.1;
/// the orchestrator's SIGTERM later ends it as usual (HTTP/2 GOAWAY, exit). Both processes accept from the same queues
/// for that moment, and each serves what it accepted. Once Kestrel has started, the new process answers on the
/// socket file in turn (it replaces the file atomically).</para>
/// <para>When there is no file, nobody answers (a stale file), the answer is slow, from another user, from another
/// network namespace, or for other endpoints, the new process binds the ports itself (with SO_REUSEPORT, the fallback)
/// and the running one keeps its listeners until SIGTERM.</para>
/// <para>Only the same user can ask: the file is created mode 0600 (in the state folder, created 0700), and both ends
/// check the peer's user id (<c>SO_PEERCRED</c>).</para>
/// </remarks>
internal sealed class ListenerHandoff(ListenSockets listeners, ShutdownDrain drain, RuntimeOptions options, TimeProvider time, ILogger<ListenerHandoff> logger)
    : IHostedLifecycleService, IDisposable
{
    private const string Magic = "shared-runtime-handoff 1";
    private const int MaxMessageBytes = 8192;

    /// <summary>How long either side waits for the other's next message.</summary>
    internal static readonly TimeSpan ExchangeTimeout = TimeSpan.FromSeconds(5);

    /// <summary>How long the running process waits for the new one to start on the listeners it sent.</summary>
    internal static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly CancellationTokenSource _stop = new();
    private Socket? _server;

    /// <summary>The connection to the predecessor while Kestrel starts on its listeners; confirmed once it has.</summary>
    private Socket? _predecessor;

    /// <summary>The socket file, or null when hand-off is off or not possible on this platform.</summary>
    public string? SocketPath { get; } = DescriptorPassing.Supported ? options.EffectiveHandoffSocket : null;

    /// <summary>Whether a predecessor may hand its listeners over: the socket file exists (it may be stale).</summary>
    public bool PredecessorMayAnswer => SocketPath is not null && File.Exists(SocketPath);

    /// <summary>Before Kestrel binds: takes the predecessor's listeners, if it has ours.</summary>
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        if (SocketPath is not null)
        {
            TakeOver(SocketPath);
        }
        return Task.CompletedTask;
    }

    /// <summary>Once Kestrel listens: offers this process's listeners to the next one.</summary>
    public Task StartedAsync(CancellationToken cancellationToken)
    {
        if (Interlocked.Exchange(ref _predecessor, null) is { } predecessor)
        {
            using (predecessor)
            {
                try
                {
                    // From now on the predecessor stops accepting; until now both processes took connections from the queues.
                    Send(predecessor, "ok\n\n", []);
                }
                catch (SocketException ex)
                {
                    // It has gone (or gave up waiting and kept its listeners): the queues are shared, nothing is lost.
                    HostLog.HandoffNotConfirmed(logger, ex.Message);
                }
            }
        }
        if (listeners.CloseUnclaimed() is > 0 and var unclaimed)
        {
            HostLog.HandoffUnclaimed(logger, unclaimed);
        }
        if (SocketPath is not null)
        {
            Offer(SocketPath);
        }
        return Task.CompletedTask;
    }

    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        StopOffering();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        // Never confirmed (the start failed): the predecessor keeps its listeners when this connection closes.
        Interlocked.Exchange(ref _predecessor, null)?.Dispose();
        StopOffering();
        _stop.Dispose();
    }

    /// <summary>The endpoints Kestrel will ask <see cref="ListenSockets.Create"/> for, as text, sorted; empty with a port 0.</summary>
    internal static IReadOnlyList<string> ListenEndpoints(RuntimeOptions options)
    {
        int[] ports = [options.DaprHttpPort, options.DaprGrpcPort, options.MetricsPort];
        if (ports.Contains(0))
        {
            return [];
        }
        var endpoints = new List<string>();
        foreach (var address in options.EffectiveListenAddresses)
        {
            if (address is not "localhost" && !IPAddress.TryParse(address, out _))
            {
                return [];
            }
            var ip = address is "localhost" ? IPAddress.Loopback : IPAddress.Parse(address);
            endpoints.AddRange(ports.Select(port => new IPEndPoint(ip, port).ToString()));
        }
        return [.. endpoints.Order(StringComparer.Ordinal)];
    }

    private void TakeOver(string path)
    {
        var wanted = ListenEndpoints(options);
        if (wanted.Count == 0 || !File.Exists(path))
        {
            return;
        }
        Socket? connection = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            // A predecessor too busy to accept (its backlog full) must not hold up the start.
            connection.SendTimeout = (int)ExchangeTimeout.TotalMilliseconds;
            connection.Connect(new UnixDomainSocketEndPoint(path));
        }
        catch (SocketException ex)
        {
            connection.Dispose();
            HostLog.HandoffNoPredecessor(logger, path, ex.SocketErrorCode.ToString(), listeners.ReusePort ? "on" : "off");
            return;
        }
        var peer = 0;
        var received = new List<SafeSocketHandle>();
        var sockets = new List<Socket>();
        try
        {
            peer = DescriptorPassing.PeerProcessId(connection);
            if (DescriptorPassing.PeerUserId(connection) != DescriptorPassing.EffectiveUserId())
            {
                HostLog.HandoffNotTaken(logger, peer, "the process answering runs as another user");
                return;
            }
            Send(connection, $"{Magic}\nlisten {string.Join(' ', wanted)}\n\n", []);
            var reply = ReadMessage(connection, received, ExchangeTimeout);
            if (reply.Length < 2 || reply[0] != Magic || !reply[1].StartsWith("listeners ", StringComparison.Ordinal))
            {
                HostLog.HandoffNotTaken(logger, peer, reply.Length >= 2 && reply[1].StartsWith("decline ", StringComparison.Ordinal)
                    ? $"it declined: {reply[1]["decline ".Length..]}" : "it answered something else than a hand-off");
                return;
            }
            string? problem = null;
            if (reply[1]["listeners ".Length..] != NetworkNamespace())
            {
                problem = "it is in another network namespace (another pod without hostNetwork)";
            }
            else
            {
                foreach (var handle in received)
                {
                    sockets.Add(new Socket(handle));
                }
                received.Clear();
                var got = sockets.Select(s => s.LocalEndPoint?.ToString() ?? "").Order(StringComparer.Ordinal);
                if (!got.SequenceEqual(wanted, StringComparer.Ordinal) || sockets.Any(s => s.SocketType != SocketType.Stream))
                {
                    problem = $"it sent listeners for {string.Join(' ', got)}";
                }
            }
            if (problem is not null)
            {
                Send(connection, $"decline {problem}\n\n", []);
                HostLog.HandoffNotTaken(logger, peer, problem);
                return;
            }
            listeners.Adopt(sockets);
            sockets.Clear();
            _predecessor = connection;
            connection = null;
            HostLog.HandoffTaken(logger, wanted.Count, string.Join(' ', wanted), peer, path);
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            HostLog.HandoffNotTaken(logger, peer, $"{ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            // Only what was not adopted: closing these descriptors leaves the predecessor's own open.
            sockets.ForEach(s => s.Dispose());
            received.ForEach(h => h.Dispose());
            connection?.Dispose();
        }
    }

    private void Offer(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }
        var temporary = $"{path}.{Environment.ProcessId}.tmp";
        try
        {
            var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
            if (!Directory.Exists(folder))
            {
                Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            File.Delete(temporary);
            var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                server.Bind(new UnixDomainSocketEndPoint(temporary));
                File.SetUnixFileMode(temporary, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                server.Listen(4);
                // rename(2): the path never goes missing for a process starting now, and a predecessor's file is replaced.
                File.Move(temporary, path, overwrite: true);
            }
            catch
            {
                server.Dispose();
                throw;
            }
            _server = server;
            _ = ServeAsync(server, _stop.Token);
        }
        catch (Exception ex) when (ex is SocketException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            HostLog.HandoffNotOffered(logger, path, ex.Message);
            TryDelete(temporary);
        }
    }

    private async Task ServeAsync(Socket server, CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await server.AcceptAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            bool handedOver;
            using (connection)
            {
                // The exchange waits on its peer with timeouts (poll): off the accept loop's thread.
                handedOver = await Task.Run(() => Answer(connection), CancellationToken.None);
            }
            if (handedOver)
            {
                drain.Begin();
                StopOffering();
                return;
            }
        }
    }

    /// <summary>One request from a starting process: true when this process's listeners went to it.</summary>
    private bool Answer(Socket connection)
    {
        var peer = 0;
        var received = new List<SafeSocketHandle>();
        try
        {
            peer = DescriptorPassing.PeerProcessId(connection);
            if (DescriptorPassing.PeerUserId(connection) != DescriptorPassing.EffectiveUserId())
            {
                HostLog.HandoffRefused(logger, peer, "it runs as another user");
                return false;
            }
            var request = ReadMessage(connection, received, ExchangeTimeout);
            if (request.Length < 2 || request[0] != Magic || !request[1].StartsWith("listen ", StringComparison.Ordinal))
            {
                HostLog.HandoffRefused(logger, peer, "not a hand-off request");
                return false;
            }
            var wanted = request[1]["listen ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToList();
            string? declined = "this process is draining";
            var handedOver = listeners.HandOver(sockets =>
            {
                var ours = sockets.Select(s => s.LocalEndPoint?.ToString() ?? "").Order(StringComparer.Ordinal).ToList();
                if (!ours.SequenceEqual(wanted, StringComparer.Ordinal))
                {
                    declined = $"this process listens on {string.Join(' ', ours)}";
                    return false;
                }
                declined = null;
                Send(connection, $"{Magic}\nlisteners {NetworkNamespace()}\n\n", sockets);
                var ack = ReadMessage(connection, received, StartTimeout);
                if (ack.Length >= 1 && ack[0] == "ok")
                {
                    return true;
                }
                HostLog.HandoffRefused(logger, peer, ack.Length >= 1 ? $"the new process declined: {ack[0]}" : "no confirmation");
                return false;
            });
            if (handedOver)
            {
                HostLog.HandedOver(logger, string.Join(' ', wanted), peer);
            }
            else if (declined is not null)
            {
                HostLog.HandoffRefused(logger, peer, declined);
                Send(connection, $"{Magic}\ndecline {declined}\n\n", []);
            }
            return handedOver;
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            // The listeners stay with this process: it keeps accepting.
            HostLog.HandoffRefused(logger, peer, $"{ex.GetType().Name}: {ex.Message}");
            return false;
        }
        finally
        {
            received.ForEach(h => h.Dispose());
        }
    }

    private void StopOffering()
    {
        if (!_stop.IsCancellationRequested)
        {
            _stop.Cancel();
        }
        // The file stays: a successor may have put its own there, and a stale one only costs a refused connect.
        Interlocked.Exchange(ref _server, null)?.Dispose();
    }

    private static void Send(Socket connection, string message, IReadOnlyList<Socket> sockets) =>
        DescriptorPassing.Send(connection, Encoding.UTF8.GetBytes(message), sockets);

    /// <summary>Reads one message (lines ending with an empty line), collecting descriptors sent with it.</summary>
    private string[] ReadMessage(Socket connection, List<SafeSocketHandle> received, TimeSpan timeout)
    {
        var buffer = new byte[MaxMessageBytes];
        var length = 0;
        var started = time.GetTimestamp();
        while (true)
        {
            var left = timeout - time.GetElapsedTime(started);
            var read = DescriptorPassing.Receive(connection, buffer.AsSpan(length), received, left > TimeSpan.Zero ? left : TimeSpan.Zero);
            if (read == 0)
            {
                throw new IOException("the other process closed the connection");
            }
            length += read;
            var text = Encoding.UTF8.GetString(buffer, 0, length);
            if (text.EndsWith("\n\n", StringComparison.Ordinal))
            {
                return text[..^2].Split('\n');
            }
            if (length == buffer.Length)
            {
                throw new IOException($"message longer than {MaxMessageBytes} bytes");
            }
        }
    }

    /// <summary>This process's network namespace (<c>net:[inode]</c>): listeners from another one are no use here.</summary>
    private static string NetworkNamespace() => new FileInfo("/proc/self/ns/net").LinkTarget ?? "unknown";

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
