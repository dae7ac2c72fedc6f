using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Creates Kestrel's listen sockets and keeps them, so a drain can close them first: new connections then go only to
/// another process on the same ports before any connection of this one is asked to close. With reuse-port on Linux the
/// sockets get SO_REUSEPORT, so a new runtime process can bind the same ports while this one still serves; the kernel
/// spreads new connections over both until this one closes its listeners.
/// </summary>
internal sealed class ListenSockets(bool reusePort)
{
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    private readonly List<Socket> _sockets = [];
    private volatile bool _closed;

    /// <summary>Whether SO_REUSEPORT is set: asked for and on Linux (elsewhere the option is ignored).</summary>
    public bool ReusePort { get; } = reusePort && OperatingSystem.IsLinux();

    /// <summary>True once <see cref="CloseAll"/> ran: no new connection reaches this process.</summary>
    public bool Closed => _closed;

    /// <summary>The <see cref="SocketTransportOptions.CreateBoundListenSocket"/> of this runtime.</summary>
    public Socket Create(EndPoint endpoint)
    {
        var socket = endpoint is IPEndPoint ip && ReusePort ? CreateReusePort(ip) : SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        lock (_sockets)
        {
            _sockets.Add(socket);
        }
        return socket;
    }

    /// <summary>Stops accepting on every listener. Kestrel's accept loops end quietly; open connections stay.</summary>
    public void CloseAll()
    {
        _closed = true;
        lock (_sockets)
        {
            foreach (var socket in _sockets)
            {
                socket.Dispose();
            }
            _sockets.Clear();
        }
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
