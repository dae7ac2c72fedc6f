using System.Net;
using System.Net.Sockets;
using SharedRuntime.Http.Relay;
using Xunit;

namespace SharedRuntime.Tests.Http;

/// <summary>The event loops under the invoke relay: what a relayed connection relies on from its sockets.</summary>
public sealed class SocketLoopTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);

    private static async Task<(LoopSocket Looped, Socket Peer, Socket Listener)> PairAsync()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var peer = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await peer.ConnectAsync(listener.LocalEndPoint!);
        var accepted = await listener.AcceptAsync();
        return (SocketLoops.Shared.Add(accepted), peer, listener);
    }

    [Fact]
    public async Task A_short_answer_and_the_peers_close_arriving_together_are_both_read()
    {
        var (looped, peer, listener) = await PairAsync();
        using var _ = listener;
        var buffer = new byte[1024];
        // A read already waiting: the loop reads the answer and finds the close reported with it.
        var first = looped.ReceiveAsync(buffer).AsTask();
        peer.Send("partial"u8);
        peer.Shutdown(SocketShutdown.Send);
        var total = await first.WaitAsync(Wait);
        while (true)
        {
            var received = await looped.ReceiveAsync(buffer.AsMemory(total)).AsTask().WaitAsync(Wait);
            if (received == 0)
            {
                break;
            }
            total += received;
        }
        Assert.Equal("partial", System.Text.Encoding.ASCII.GetString(buffer, 0, total));
        looped.Abort();
        peer.Dispose();
    }

    [Fact]
    public async Task A_read_that_waits_gets_what_arrives_later()
    {
        var (looped, peer, listener) = await PairAsync();
        using var _ = listener;
        var buffer = new byte[16];
        peer.Send("a"u8);
        Assert.Equal(1, await looped.ReceiveAsync(buffer).AsTask().WaitAsync(Wait));
        var pending = looped.ReceiveAsync(buffer).AsTask();
        Assert.False(pending.IsCompleted);
        peer.Send("bc"u8);
        Assert.Equal(2, await pending.WaitAsync(Wait));
        looped.Abort();
        peer.Dispose();
    }

    [Fact]
    public async Task Closing_a_socket_fails_what_waits_on_it()
    {
        var (looped, peer, listener) = await PairAsync();
        using var _ = listener;
        var pending = looped.ReceiveAsync(new byte[16]).AsTask();
        var readable = looped.WaitReadableAsync().AsTask();
        looped.Abort();
        await Assert.ThrowsAsync<SocketException>(() => pending.WaitAsync(Wait));
        await Assert.ThrowsAsync<SocketException>(() => readable.WaitAsync(Wait));
        await Assert.ThrowsAsync<SocketException>(() => looped.ReceiveAsync(new byte[16]).AsTask());
        peer.Dispose();
    }

    [Fact]
    public async Task A_large_send_waits_for_room_and_arrives_whole()
    {
        var (looped, peer, listener) = await PairAsync();
        using var _ = listener;
        var data = new byte[8 * 1024 * 1024];
        Random.Shared.NextBytes(data);
        var sending = looped.SendAsync(data).AsTask();
        var received = new byte[data.Length];
        var total = 0;
        while (total < data.Length)
        {
            total += await peer.ReceiveAsync(received.AsMemory(total)).AsTask().WaitAsync(Wait);
        }
        Assert.Equal(data.Length, await sending.WaitAsync(Wait));
        Assert.Equal(data, received);
        looped.Abort();
        peer.Dispose();
    }

    [Fact]
    public async Task A_detached_socket_goes_on_with_the_ordinary_socket_api()
    {
        var (looped, peer, listener) = await PairAsync();
        using var _ = listener;
        var socket = looped.Detach();
        Assert.True(socket.Blocking);
        peer.Send("next"u8);
        var buffer = new byte[16];
        Assert.Equal(4, await socket.ReceiveAsync(buffer).WaitAsync(Wait));
        await socket.SendAsync("back"u8.ToArray());
        Assert.Equal(4, await peer.ReceiveAsync(buffer).WaitAsync(Wait));
        socket.Dispose();
        peer.Dispose();
    }

    [Fact]
    public async Task A_connection_to_a_port_nobody_listens_on_fails_at_once()
    {
        using var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)closed.LocalEndPoint!).Port;
        using var connections = new SharedRuntime.AppChannel.AppConnections(new Uri($"http://127.0.0.1:{port}"), TimeProvider.System);
        var ex = await Assert.ThrowsAsync<SocketException>(() => connections.ConnectAsync(CancellationToken.None).AsTask().WaitAsync(Wait));
        Assert.Equal(SocketError.ConnectionRefused, ex.SocketErrorCode);
    }
}
