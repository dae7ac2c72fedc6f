using System.Net;
using System.Net.Sockets;
using SharedRuntime.AppChannel;
using SharedRuntime.Http.Relay;
using Xunit;

namespace SharedRuntime.Tests.AppChannel;

/// <summary>
/// Which of an app's HTTP/1.1 connections a relayed call gets: one on the loop that drives its caller's socket, so the
/// call runs on one thread, without the connections open for the app going past the channel's <c>maxConcurrency</c>.
/// </summary>
public sealed class AppConnectionsTests : IDisposable
{
    // Two loops of their own, whatever the machine's core count (the shared ones may be a single loop).
    private static readonly SocketLoop LoopA = new(100), LoopB = new(101);

    private readonly Socket _app;
    private readonly Uri _endpoint;

    public AppConnectionsTests()
    {
        // Connections complete in the listener's backlog: nothing needs to accept them.
        _app = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _app.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _app.Listen(64);
        _endpoint = new Uri($"http://127.0.0.1:{((IPEndPoint)_app.LocalEndPoint!).Port}");
    }

    public void Dispose() => _app.Dispose();

    [Fact]
    public async Task A_call_takes_the_idle_connection_on_its_own_loop_before_one_used_later_on_another()
    {
        using var pool = new AppConnections(_endpoint, TimeProvider.System, maxConnections: 8);
        var onA = await pool.ConnectAsync(CancellationToken.None, LoopA);
        var onB = await pool.ConnectAsync(CancellationToken.None, LoopB);
        Assert.Same(LoopA, onA.Socket.Loop);
        Assert.Same(LoopB, onB.Socket.Loop);
        pool.Return(onA);
        pool.Return(onB); // the most recently used

        Assert.Same(onA, pool.TakeIdle(LoopA));
        Assert.Same(onB, pool.TakeIdle(LoopB));
        Assert.Null(pool.TakeIdle(LoopA));
    }

    [Fact]
    public async Task With_none_idle_on_its_loop_a_call_opens_its_own_until_the_channel_bound_then_takes_another_loops()
    {
        using var pool = new AppConnections(_endpoint, TimeProvider.System, maxConnections: 2);
        var onA = await pool.ConnectAsync(CancellationToken.None, LoopA);
        pool.Return(onA);

        // One open of two: a call on loop B opens its own rather than take A's.
        Assert.Null(pool.TakeIdle(LoopB));
        var onB = await pool.ConnectAsync(CancellationToken.None, LoopB);

        Assert.Equal(2, pool.Open);

        // Two open of two, B's busy: the next call on B gets A's idle one instead of a third connection.
        Assert.Same(onA, pool.TakeIdle(LoopB));
        onA.Dispose();
        onB.Dispose();
    }

    [Fact]
    public async Task A_closed_connection_no_longer_counts_against_the_bound()
    {
        using var pool = new AppConnections(_endpoint, TimeProvider.System, maxConnections: 2);
        var first = await pool.ConnectAsync(CancellationToken.None, LoopA);
        first.Dispose();
        first.Dispose(); // twice: counted once
        Assert.Equal(0, pool.Open);
        var second = await pool.ConnectAsync(CancellationToken.None, LoopA);
        pool.Return(second);

        // One open of two (the first was closed): a call on B opens its own.
        Assert.Null(pool.TakeIdle(LoopB));
    }

    [Fact]
    public async Task Another_tenants_app_at_the_same_address_is_not_held_to_the_first_apps_bound()
    {
        // Two tenants' apps served by one process at one address: each channel counts only its own connections.
        using var full = new AppConnections(_endpoint, TimeProvider.System, maxConnections: 1);
        using var other = new AppConnections(_endpoint, TimeProvider.System, maxConnections: 1);
        var fullsOwn = await full.ConnectAsync(CancellationToken.None, LoopA);
        full.Return(fullsOwn);
        Assert.Same(fullsOwn, full.TakeIdle(LoopB)); // at its bound: its idle one on another loop

        Assert.Equal(0, other.Open);
        Assert.Null(other.TakeIdle(LoopB)); // nothing of the first app's to take: it opens its own
        var othersOwn = await other.ConnectAsync(CancellationToken.None, LoopB);
        Assert.Equal(1, other.Open);
        Assert.Equal(1, full.Open);
        fullsOwn.Dispose();
        othersOwn.Dispose();
    }

    [Fact]
    public async Task A_connection_that_could_not_be_made_is_not_counted_and_says_why()
    {
        var closed = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        closed.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)closed.LocalEndPoint!).Port;
        closed.Dispose(); // nothing listens there now
        using var refused = new AppConnections(new Uri($"http://127.0.0.1:{port}"), TimeProvider.System, maxConnections: 1);
        for (var i = 0; i < 3; i++)
        {
            var failure = await Assert.ThrowsAsync<SocketException>(() => refused.ConnectAsync(CancellationToken.None, LoopA).AsTask());
            Assert.Equal(SocketError.ConnectionRefused, failure.SocketErrorCode);
        }

        Assert.Equal(0, refused.Open);
    }
}
