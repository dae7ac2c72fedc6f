using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Http;

namespace SharedRuntime.Tests.Http;

/// <summary>
/// The bound on open connections, on its own: which connection makes room for a new one at the bound, that the count
/// stays right through it, and that it keeps nothing of the addresses it saw once their connections are gone.
/// </summary>
public sealed class ConnectionLimitTests
{
    private sealed class Connection(TimeSpan idle) : IIdleConnection
    {
        public TimeSpan Idle { get; set; } = idle;

        public bool Closed { get; private set; }

        public TimeSpan IdleFor() => Idle;

        public bool TryClaimIdle() => Idle > TimeSpan.Zero;

        public void Close() => Closed = true;
    }

    private static IPEndPoint From(string address) => new(IPAddress.Parse(address), 40000);

    private static (ConnectionLease Lease, Connection Connection) Open(ConnectionLimit limit, string address, TimeSpan idle)
    {
        var lease = limit.TryOpen(From(address)) ?? throw new InvalidOperationException("refused");
        var connection = new Connection(idle);
        lease.Attach(connection);
        return (lease, connection);
    }

    [Fact]
    public void At_the_bound_the_longest_idle_connection_of_the_address_holding_most_makes_room()
    {
        var limit = new ConnectionLimit(5, NullLogger<ConnectionLimit>.Instance);
        var other = Open(limit, "10.0.0.2", TimeSpan.FromMinutes(10)); // idle longest of all, but its address holds one
        var busy = Open(limit, "10.0.0.1", TimeSpan.Zero);
        var idleShort = Open(limit, "10.0.0.1", TimeSpan.FromSeconds(2));
        var idleLong = Open(limit, "10.0.0.1", TimeSpan.FromSeconds(30));
        var fresh = Open(limit, "10.0.0.1", TimeSpan.FromMilliseconds(100)); // idle, but not for long enough

        var newcomer = limit.TryOpen(From("10.0.0.3"));

        Assert.NotNull(newcomer);
        Assert.True(idleLong.Connection.Closed);
        Assert.False(other.Connection.Closed || busy.Connection.Closed || idleShort.Connection.Closed || fresh.Connection.Closed);
        Assert.Equal(5, limit.Open);
        Assert.Equal(1, limit.ClosedIdle);

        // The closed connection's own end does not free a second place.
        idleLong.Lease.Close();
        Assert.Equal(5, limit.Open);

        // Next: the address holding most has 3 (busy, idle 2 s, idle 0.1 s): its connection idle 2 s goes.
        Assert.NotNull(limit.TryOpen(From("10.0.0.3")));
        Assert.True(idleShort.Connection.Closed);
        Assert.Equal(5, limit.Open);
    }

    [Fact]
    public void At_the_bound_with_none_idle_a_new_connection_is_refused_and_nothing_is_closed()
    {
        var limit = new ConnectionLimit(3, NullLogger<ConnectionLimit>.Instance);
        var open = new[]
        {
            Open(limit, "10.0.0.1", TimeSpan.Zero),
            Open(limit, "10.0.0.1", TimeSpan.FromMilliseconds(500)),
            Open(limit, "10.0.0.2", TimeSpan.Zero),
        };

        Assert.Null(limit.TryOpen(From("10.0.0.3")));
        Assert.All(open, o => Assert.False(o.Connection.Closed));
        Assert.Equal(3, limit.Open);

        // One ends: the next connection is counted again without closing anything.
        open[0].Lease.Close();
        open[0].Lease.Close(); // twice is once
        Assert.Equal(2, limit.Open);
        Assert.NotNull(limit.TryOpen(From("10.0.0.3")));
        Assert.Equal(0, limit.ClosedIdle);
    }

    [Fact]
    public void Addresses_whose_connections_all_ended_are_not_kept()
    {
        var limit = new ConnectionLimit(100, NullLogger<ConnectionLimit>.Instance);
        for (var i = 0; i < 5000; i++)
        {
            var (lease, _) = Open(limit, $"10.{i / 65536 % 256}.{i / 256 % 256}.{i % 256}", TimeSpan.Zero);
            lease.Close();
        }
        Assert.Equal(0, limit.Sources);
        Assert.Equal(0, limit.Open);

        // Nor the address of a connection closed to make room, once it holds no other.
        var single = Open(limit, "192.0.2.1", TimeSpan.FromSeconds(5));
        var full = new ConnectionLimit(1, NullLogger<ConnectionLimit>.Instance);
        var held = Open(full, "192.0.2.1", TimeSpan.FromSeconds(5));
        Assert.NotNull(full.TryOpen(From("192.0.2.2")));
        Assert.True(held.Connection.Closed);
        Assert.Equal(1, full.Sources);
        single.Lease.Close();
        Assert.Equal(0, limit.Sources);
    }

    [Fact]
    public void When_the_address_holding_most_has_none_idle_an_idle_connection_of_another_makes_room()
    {
        var limit = new ConnectionLimit(5, NullLogger<ConnectionLimit>.Instance);
        var busy = Enumerable.Range(0, 3).Select(_ => Open(limit, "10.0.0.1", TimeSpan.Zero)).ToArray();
        var idleFew = Open(limit, "10.0.0.2", TimeSpan.FromSeconds(3));
        var idleOne = Open(limit, "10.0.0.3", TimeSpan.FromSeconds(30));

        Assert.NotNull(limit.TryOpen(From("10.0.0.4")));

        Assert.True(idleFew.Connection.Closed || idleOne.Connection.Closed);
        Assert.All(busy, b => Assert.False(b.Connection.Closed));
        Assert.Equal(5, limit.Open);
    }

    [Fact]
    public void A_look_that_found_none_idle_refuses_new_connections_for_a_moment_then_looks_again()
    {
        var time = new FakeTimeProvider();
        var limit = new ConnectionLimit(2, NullLogger<ConnectionLimit>.Instance, time: time);
        var first = Open(limit, "10.0.0.1", TimeSpan.Zero);
        var second = Open(limit, "10.0.0.2", TimeSpan.Zero);
        Assert.Null(limit.TryOpen(From("10.0.0.3")));

        // A connection goes idle long enough, but the look that found none still holds.
        second.Connection.Idle = TimeSpan.FromSeconds(5);
        Assert.Null(limit.TryOpen(From("10.0.0.3")));
        Assert.False(second.Connection.Closed);

        time.Advance(ConnectionLimit.SearchAgainAfter);
        Assert.NotNull(limit.TryOpen(From("10.0.0.3")));
        Assert.True(second.Connection.Closed);
        Assert.False(first.Connection.Closed);
        Assert.Equal(2, limit.Open);
    }
}
