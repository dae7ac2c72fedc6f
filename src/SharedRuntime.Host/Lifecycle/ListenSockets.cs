using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Creates Kestrel's listen sockets and keeps them, so a drain can close them first: new connections then go only to
/// another process on the same ports before any connection of this one is asked to close. Listeners handed over by the
/// process this one replaces (<see cref="ListenerHandoff"/>) are used as they are; the others are bound here. With
/// reuse-port on Linux bound sockets get SO_REUSEPORT, so a new runtime process that could not take them over can bind
/// the same ports while this one still serves; the kernel spreads new connections over both until this one closes.
/// </summary>
internal sealed class ListenSockets(bool reusePort)
{
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    private readonly List<Socket> _sockets = [];
    private readonly List<Socket> _adopted = [];
    private volatile bool _closed;

    /// <summary>Whether SO_REUSEPORT is set: asked for and on Linux (elsewhere the option is ignored).</summary>
    public bool ReusePort { get; } = reusePort && OperatingSystem.IsLinux();

    /// <summary>True once <see cref="CloseAll"/> ran: no new connection reaches this process.</summary>
    public bool Closed => _closed;

    /// <summary>True once this process's listeners went to the process that took over.</summary>
    public bool HandedOver { get; private set; }

    /// <summary>Listening sockets received from the predecessor, used by <see cref="Create"/> for their endpoints.</summary>
    public void Adopt(IEnumerable<Socket> sockets)
    {
        lock (_sockets)
        {
            _adopted.AddRange(sockets);
        }
    }

    /// <summary>The <see cref="SocketTransportOptions.CreateBoundListenSocket"/> of this runtime.</summary>
    public Socket Create(EndPoint endpoint)
    {
        lock (_sockets)
        {
            var adopted = _adopted.FindIndex(s => Equals(s.LocalEndPoint, endpoint));
            if (adopted >= 0)
            {
                var socket = _adopted[adopted];
                _adopted.RemoveAt(adopted);
                _sockets.Add(socket);
                return socket;
            }
        }
        var bound = endpoint is IPEndPoint ip && ReusePort ? CreateReusePort(ip) : SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        lock (_sockets)
        {
            _sockets.Add(bound);
        }
        return bound;
    }

    /// <summary>Closes adopted sockets no endpoint asked for (none when both processes have the same listeners).</summary>
    public int CloseUnclaimed()
    {
        lock (_sockets)
        {
            var count = _adopted.Count;
            _adopted.ForEach(s => s.Dispose());
            _adopted.Clear();
            return count;
        }
    }

    /// <summary>The local endpoints of the listeners, as text (<c>127.0.0.1:3500</c>), sorted.</summary>
    public IReadOnlyList<string> Endpoints()
    {
        lock (_sockets)
        {
            return [.. _sockets.Select(s => s.LocalEndPoint?.ToString() ?? "").Order(StringComparer.Ordinal)];
        }
    }

    /// <summary>
    /// Hands every listener to another process: <paramref name="exchange"/> sends them and says whether the other side
    /// confirmed it has started on them. Then this process stops accepting without closing them (<see cref="Detach"/>),
    /// and <see cref="Closed"/> turns true. Returns false, and changes nothing, when already closed or the exchange failed.
    /// </summary>
    /// <remarks>
    /// Runs under the lock <see cref="CloseAll"/> takes, so a SIGTERM cannot close a listener being handed over: a SIGTERM
    /// arriving meanwhile waits for the exchange (at most <see cref="ListenerHandoff.StartTimeout"/>). Kestrel keeps
    /// accepting all along.
    /// </remarks>
    public bool HandOver(Func<IReadOnlyList<Socket>, bool> exchange)
    {
        lock (_sockets)
        {
            if (_closed || _sockets.Count == 0 || !exchange(_sockets))
            {
                return false;
            }
            foreach (var socket in _sockets)
            {
                Detach(socket);
            }
            // Kestrel keeps the detached sockets and disposes them when it stops.
            _sockets.Clear();
            HandedOver = true;
            _closed = true;
            return true;
        }
    }

    /// <summary>Stops accepting on every listener. Kestrel's accept loops end quietly; open connections stay.</summary>
    public void CloseAll()
    {
        lock (_sockets)
        {
            _closed = true;
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
            _sockets.Clear();
        }
    }

    /// <summary>
    /// Points <paramref name="socket"/>'s descriptor at a fresh loopback listener nobody is told about, so that Kestrel's
    /// accept loop waits there and this process never again accepts from, closes or shuts down the listener the other
    /// process now holds. Disposing a socket with an accept pending would shut the shared socket down (.NET unblocks
    /// pending calls with <c>shutdown</c>/<c>connect(AF_UNSPEC)</c> and sets a zero linger that accepted connections
    /// inherit), which resets the connections queued on it: this process never disposes it.
    /// </summary>
    private static void Detach(Socket socket)
    {
        using var parking = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        parking.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        parking.Listen(1);
        // Non-blocking, as the listener it replaces was: an accept loop that tries the descriptor once more (the relay's
        // accepts on its own event loop) finds nothing there instead of blocking its thread.
        parking.Blocking = false;
        DescriptorPassing.Replace(socket, parking);
    }

    /// <summary>
    /// Whether Linux moves connections waiting in a closed listener's accept queue to another socket on the same port
    /// (<c>net.ipv4.tcp_migrate_req</c>, Linux 5.14+); without it they are reset when the listener closes.
    /// </summary>
    public static bool KernelMigratesAcceptQueue()
    {
        try
        {
            return File.ReadAllText("/proc/sys/net/ipv4/tcp_migrate_req").Trim() == "1";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static Socket CreateReusePort(IPEndPoint ip)
    {
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
            socket.Bind(ip);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
