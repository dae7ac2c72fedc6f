using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

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
        var a = RouteOf("a", guard);
        var calls = 0;
        ValueTask<int> Fail(Exception ex, CancellationToken _)
        {
            calls++;
            throw ex;
        }

        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<StateETagMismatchException>(() => RunAsync(a, (Exception)new StateETagMismatchException("k"), Fail));
        }
        Assert.False(guard.Breaker.IsOpen);
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<ComponentException>(() => RunAsync(a, (Exception)new ComponentException("down"), Fail));
        }
        var before = calls;

        var b = RouteOf("b", guard);
        var outcome = await b.RunGuardedAsync((Exception)new ComponentException("down"), Fail, default);
        Assert.Equal(GuardRefusal.BackendUnavailable, outcome.Refusal);
        Assert.Equal(before, calls);
        Assert.Contains("unavailable", b.Describe(outcome.Refusal, outcome.RetryAfter), StringComparison.Ordinal);
    }

    [Fact]
    public async Task GuardNeverCountsRequestsTheBackendRefusedForTheirData()
    {
        var guard = new ComponentGuard("store", new FairQueue(4, 4), new BackendBreaker(2, TimeSpan.FromSeconds(5), new FakeTimeProvider()));
        static ValueTask<int> Fail(Exception ex, CancellationToken _) => throw ex;

        for (var i = 0; i < 10; i++)
        {
            await Assert.ThrowsAsync<StateRequestRejectedException>(() => RunAsync(RouteOf("attacker", guard), (Exception)new StateRequestRejectedException("U+0000 in text"), Fail));
        }

        Assert.False(guard.Breaker.IsOpen);
        var bystander = await RouteOf("bystander", guard).RunGuardedAsync(1, static (v, _) => ValueTask.FromResult(v), default);
        Assert.Equal(GuardRefusal.None, bystander.Refusal);
        Assert.Equal(1, bystander.Value);
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

    private static ComponentConfig Config(string name) => new()
    {
        Name = name,
        Type = "state.in-memory",
        Version = "v1",
        Metadata = [],
        Scopes = [],
        Source = "test",
    };

    /// <summary>Tenant <paramref name="appId"/>'s route to a component whose calls share <paramref name="guard"/>.</summary>
    private static ComponentRoute RouteOf(string appId, ComponentGuard guard) =>
        new(appId, new ComponentEntry(Config(guard.ComponentName), new NoComponent(), null, guard), null, Polly.ResiliencePipeline.Empty);

    /// <summary>A guarded call whose answer is thrown when it is a refusal, as a test can assert on.</summary>
    private static async Task<T> RunAsync<T>(ComponentRoute route, Exception state, Func<Exception, CancellationToken, ValueTask<T>> call)
    {
        var outcome = await route.RunGuardedAsync(state, call, default);
        return outcome.IsRefused ? throw new InvalidOperationException(route.Describe(outcome.Refusal, outcome.RetryAfter)) : outcome.Value;
    }

    private sealed class NoComponent : IComponent
    {
        public IReadOnlyList<string> Capabilities => [];

        public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
