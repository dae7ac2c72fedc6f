using System.Net;
using System.Net.Sockets;
using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>A listening socket passed over a Unix socket keeps its accept queue whatever the sender does next.</summary>
public sealed class DescriptorPassingTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly string _folder = Directory.CreateTempSubdirectory("sharedruntime-fds-").FullName;

    [Fact]
    public async Task AConnectionQueuedBeforeThePassIsAcceptedByTheReceiverAfterTheSenderDisposedItsSocketWithAnAcceptPending()
    {
        if (!DescriptorPassing.Supported)
        {
            return;
        }
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(16);
        var endpoint = (IPEndPoint)listener.LocalEndPoint!;
        // Kestrel's accept loop: an accept pending when the socket is disposed makes .NET close it abortively, with a
        // zero linger set on the socket (which connections accepted from it later inherit: they would close with a reset).
        var pending = listener.AcceptAsync();

        var (sender, receiver) = Pair();
        using (sender)
        using (receiver)
        {
            DescriptorPassing.Send(sender, "listeners\n\n"u8, [listener]);
            var received = new List<SafeSocketHandle>();
            var buffer = new byte[64];
            Assert.True(DescriptorPassing.Receive(receiver, buffer, received, Timeout) > 0);
            using var taken = new Socket(Assert.Single(received));
            Assert.Equal(endpoint, taken.LocalEndPoint);

            // Queued while both processes hold the listener: nobody has accepted it yet when the sender lets go.
            using var queued = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            using var parking = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            parking.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            parking.Listen(1);
            DescriptorPassing.Replace(listener, parking);
            await queued.ConnectAsync(endpoint);
            listener.Dispose();
            await Assert.ThrowsAnyAsync<Exception>(async () => await pending.WaitAsync(Timeout));

            using var accepted = await taken.AcceptAsync().WaitAsync(Timeout);
            await queued.SendAsync("ping"u8.ToArray());
            var read = new byte[4];
            Assert.Equal(4, await accepted.ReceiveAsync(read).WaitAsync(Timeout));
            Assert.Equal("ping"u8.ToArray(), read);
            Assert.False(accepted.LingerState!.Enabled, "the sender's close left the shared listener as it was");
        }
    }

    [Fact]
    public void PeerCredentialsNameThisProcess()
    {
        if (!DescriptorPassing.Supported)
        {
            return;
        }
        var (sender, receiver) = Pair();
        using (sender)
        using (receiver)
        {
            Assert.Equal(DescriptorPassing.EffectiveUserId(), DescriptorPassing.PeerUserId(receiver));
            Assert.Equal(Environment.ProcessId, DescriptorPassing.PeerProcessId(receiver));
        }
    }

    private (Socket Sender, Socket Receiver) Pair()
    {
        var path = Path.Combine(_folder, $"{Guid.NewGuid():N}.sock");
        using var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        server.Bind(new UnixDomainSocketEndPoint(path));
        server.Listen(1);
        var sender = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        sender.Connect(new UnixDomainSocketEndPoint(path));
        return (sender, server.Accept());
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
