using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Listen sockets with SO_REUSEPORT on Linux, so a new runtime process can bind the same ports while the old one
/// still serves; the kernel spreads new connections over both until the old one closes its listeners.
/// </summary>
internal static class ReusePortListenSocket
{
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    /// <summary>Whether SO_REUSEPORT is available here (Linux only; elsewhere the flag is ignored).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    public static Socket Create(EndPoint endpoint)
    {
        if (endpoint is not IPEndPoint ip || !IsSupported)
        {
            return SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
        }
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
