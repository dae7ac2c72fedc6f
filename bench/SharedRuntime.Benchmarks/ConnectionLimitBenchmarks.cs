using System.Net;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Http;

namespace SharedRuntime.Benchmarks;

/// <summary>
/// What a connection arriving at the bound on open connections (<c>--max-connections</c>, 10,000) costs the runtime,
/// with the bound full over 10,000 connections. All of it happens under the one lock every connection's open and close
/// takes, so it is what a client opening connections at the bound can make everyone else's connections wait behind.
/// </summary>
[MemoryDiagnoser]
public class ConnectionLimitBenchmarks
{
    private const int Bound = 10_000;
    private ConnectionLimit _busy = null!;
    private ConnectionLimit _busyEveryLook = null!;
    private ConnectionLimit _idleAtMost = null!;
    private readonly IPEndPoint _newcomer = new(IPAddress.Parse("192.0.2.1"), 40000);
    private readonly IPEndPoint _most = new(IPAddress.Parse("10.255.255.255"), 40000);

    [GlobalSetup]
    public void Setup()
    {
        // 10,000 addresses each holding one busy connection: every newcomer is refused.
        _busy = Fill(new ConnectionLimit(Bound, NullLogger<ConnectionLimit>.Instance), Bound, 0);
        _busyEveryLook = Fill(new ConnectionLimit(Bound, NullLogger<ConnectionLimit>.Instance, time: new LateClock()), Bound, 0);
        // 5,000 addresses with one busy connection each, and one address holding 5,000 idle ones: each newcomer from it
        // closes one of its own, as a client churning connections at the bound does.
        _idleAtMost = Fill(new ConnectionLimit(Bound, NullLogger<ConnectionLimit>.Instance), Bound / 2, Bound / 2);
    }

    [Benchmark(Baseline = true, Description = "refused: none idle among 10,000 busy, 10,000 addresses")]
    public ConnectionLease? Refused() => _busy.TryOpen(_newcomer);

    [Benchmark(Description = "refused, every look over all addresses (at most one each 100 ms)")]
    public ConnectionLease? RefusedLookingOverAll() => _busyEveryLook.TryOpen(_newcomer);

    [Benchmark(Description = "an idle one of the address holding most makes room, 5,001 addresses")]
    public ConnectionLease? MakesRoom()
    {
        var lease = _idleAtMost.TryOpen(_most)!;
        lease.Attach(Fake.Idle);
        return lease;
    }

    private ConnectionLimit Fill(ConnectionLimit limit, int busyAddresses, int idleAtMost)
    {
        for (var i = 0; i < busyAddresses; i++)
        {
            limit.TryOpen(new IPEndPoint(new IPAddress(0x0A000000u + (uint)i + 1), 40000))!.Attach(Fake.Busy);
        }
        for (var i = 0; i < idleAtMost; i++)
        {
            limit.TryOpen(_most)!.Attach(Fake.Idle);
        }
        return limit;
    }

    private sealed class Fake(TimeSpan idle) : IIdleConnection
    {
        public static readonly Fake Busy = new(TimeSpan.Zero);
        public static readonly Fake Idle = new(TimeSpan.FromSeconds(5));

        public TimeSpan IdleFor() => idle;

        public bool TryClaimIdle() => idle > TimeSpan.Zero;

        public void Close()
        {
        }
    }

    /// <summary>A clock a second later at each reading, so no look's result is still fresh at the next.</summary>
    private sealed class LateClock : TimeProvider
    {
        private long _now;

        public override long TimestampFrequency => 1000;

        public override long GetTimestamp() => _now += 1000;
    }
}
