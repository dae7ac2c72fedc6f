using Microsoft.Extensions.Time.Testing;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.AppChannel;

public class CircuitBreakerTests
{
    private readonly FakeTimeProvider _time = new();

    private CircuitBreaker Breaker(string trip = "consecutiveFailures >= 3", int maxRequests = 1, TimeSpan? interval = null) =>
        new(new CircuitBreakerPolicyConfig(maxRequests, interval ?? TimeSpan.Zero, TimeSpan.FromSeconds(10), TripExpression.Parse(trip)), _time);

    private static void Call(CircuitBreaker breaker, bool success)
    {
        Assert.True(breaker.TryAcquire(out var generation));
        breaker.Record(generation, success);
    }

    [Fact]
    public void OpensWhenTheTripExpressionHoldsAndRefusesUntilItsTimeout()
    {
        var breaker = Breaker();
        Call(breaker, false);
        Call(breaker, false);
        Assert.Equal(CircuitState.Closed, breaker.State);
        Call(breaker, false);
        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.False(breaker.TryAcquire(out _));

        _time.Advance(TimeSpan.FromSeconds(9));
        Assert.False(breaker.TryAcquire(out _));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
    }

    [Fact]
    public void ASuccessInBetweenResetsConsecutiveFailures()
    {
        var breaker = Breaker();
        Call(breaker, false);
        Call(breaker, false);
        Call(breaker, true);
        Call(breaker, false);
        Call(breaker, false);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }

    [Fact]
    public void HalfOpenLetsMaxRequestsProbesThroughThenClosesOnTheirSuccess()
    {
        var breaker = Breaker(maxRequests: 2);
        for (var i = 0; i < 3; i++)
        {
            Call(breaker, false);
        }
        _time.Advance(TimeSpan.FromSeconds(10));

        Assert.True(breaker.TryAcquire(out var first));
        Assert.True(breaker.TryAcquire(out var second));
        Assert.False(breaker.TryAcquire(out _));
        breaker.Record(first, true);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
        breaker.Record(second, true);
        Assert.Equal(CircuitState.Closed, breaker.State);
        Assert.True(breaker.TryAcquire(out _));
    }

    [Fact]
    public void AFailedProbeOpensItAgain()
    {
        var breaker = Breaker();
        for (var i = 0; i < 3; i++)
        {
            Call(breaker, false);
        }
        _time.Advance(TimeSpan.FromSeconds(10));
        Call(breaker, false);
        Assert.Equal(CircuitState.Open, breaker.State);
    }

    [Fact]
    public void AnAbandonedProbeFreesItsSlot()
    {
        var breaker = Breaker();
        for (var i = 0; i < 3; i++)
        {
            Call(breaker, false);
        }
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.True(breaker.TryAcquire(out var probe));
        breaker.Abandon(probe);
        Assert.True(breaker.TryAcquire(out _));
    }

    [Fact]
    public void ResultsOfCallsStartedBeforeATripAreIgnored()
    {
        var breaker = Breaker();
        Assert.True(breaker.TryAcquire(out var early));
        for (var i = 0; i < 3; i++)
        {
            Call(breaker, false);
        }
        _time.Advance(TimeSpan.FromSeconds(10));
        breaker.Record(early, true);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
    }

    [Fact]
    public void AnIntervalClearsTheCountsWhileClosed()
    {
        var breaker = Breaker("totalFailures >= 3", interval: TimeSpan.FromSeconds(5));
        Call(breaker, false);
        Call(breaker, false);
        _time.Advance(TimeSpan.FromSeconds(5));
        Call(breaker, false);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }
}
