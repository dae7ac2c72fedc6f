using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Admission;

public class BackendBreakerTests
{
    [Fact]
    public void OpensAfterConsecutiveFailuresThenLetsOneProbeThrough()
    {
        var time = new FakeTimeProvider();
        var breaker = new BackendBreaker(failureThreshold: 5, TimeSpan.FromSeconds(5), time);
        for (var i = 0; i < 4; i++)
        {
            Assert.True(breaker.TryAcquire(out _));
            breaker.RecordFailure();
        }
        breaker.RecordSuccess();
        for (var i = 0; i < 5; i++)
        {
            Assert.True(breaker.TryAcquire(out _));
            breaker.RecordFailure();
        }

        Assert.False(breaker.TryAcquire(out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(5), retryAfter);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(breaker.TryAcquire(out _));
        Assert.False(breaker.TryAcquire(out _));
        breaker.RecordSuccess();
        Assert.False(breaker.IsOpen);
        Assert.True(breaker.TryAcquire(out _));
    }

    [Fact]
    public void AFailedProbeOpensItAgain()
    {
        var time = new FakeTimeProvider();
        var breaker = new BackendBreaker(failureThreshold: 1, TimeSpan.FromSeconds(5), time);
        breaker.RecordFailure();
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(breaker.TryAcquire(out _));
        breaker.RecordFailure();

        Assert.False(breaker.TryAcquire(out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(5), retryAfter);
    }

    [Fact]
    public async Task GuardFailsFastWhileOpenAndIgnoresETagConflicts()
    {
        var time = new FakeTimeProvider();
        var guard = new ComponentGuard("store", new FairQueue(4, 4), new BackendBreaker(2, TimeSpan.FromSeconds(5), time));
        var calls = 0;
        ValueTask<int> Fail(Exception ex, CancellationToken _)
        {
            calls++;
            throw ex;
        }

        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<StateETagMismatchException>(() => guard.RunAsync("a", (Exception)new StateETagMismatchException("k"), Fail, default).AsTask());
        }
        Assert.False(guard.Breaker.IsOpen);
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<ComponentException>(() => guard.RunAsync("a", (Exception)new ComponentException("down"), Fail, default).AsTask());
        }
        var before = calls;

        var error = await Assert.ThrowsAsync<BackendUnavailableException>(() => guard.RunAsync("b", (Exception)new ComponentException("down"), Fail, default).AsTask());
        Assert.Equal(before, calls);
        Assert.Contains("unavailable", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GuardNeverCountsRequestsTheBackendRefusedForTheirData()
    {
        var guard = new ComponentGuard("store", new FairQueue(4, 4), new BackendBreaker(2, TimeSpan.FromSeconds(5), new FakeTimeProvider()));
        static ValueTask<int> Fail(Exception ex, CancellationToken _) => throw ex;

        for (var i = 0; i < 10; i++)
        {
            await Assert.ThrowsAsync<StateRequestRejectedException>(() => guard.RunAsync("attacker", (Exception)new StateRequestRejectedException("U+0000 in text"), Fail, default).AsTask());
        }

        Assert.False(guard.Breaker.IsOpen);
        Assert.Equal(1, await guard.RunAsync("bystander", 1, static (v, _) => ValueTask.FromResult(v), default));
    }

    [Fact]
    public void GuardSettingsComeFromComponentMetadata()
    {
        var config = new ComponentConfig
        {
            Name = "store",
            Type = "state.in-memory",
            Version = "v1",
            Metadata = [new("maxConcurrentCalls", "3"), new("maxQueuedCallsPerApp", "7"), new("backendFailureThreshold", "2"), new("backendOpenDuration", "1s")],
            Scopes = [],
            Source = "test",
        };
        var guard = ComponentGuard.Create(config, TimeProvider.System);

        Assert.Equal(3, guard.Queue.MaxConcurrency);
        Assert.Equal(7, guard.Queue.MaxQueuedPerTenant);
        Assert.Equal(2, guard.Breaker.FailureThreshold);
        Assert.Equal(TimeSpan.FromSeconds(1), guard.Breaker.OpenDuration);
    }
}
