using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.Tests.Host;

public sealed class ReloadCollectionsTests
{
    private readonly FakeTimeProvider _time = new();
    private int _collections;

    private ReloadCollections Create() => new(_time, () => Interlocked.Increment(ref _collections));

    [Fact]
    public void ABurstOfReloadsCollectsOnceAfterItsLastReload()
    {
        using var collections = Create();
        for (var i = 0; i < 5; i++)
        {
            collections.Reloaded();
            _time.Advance(ReloadCollections.QuietTime / 2);
        }
        Assert.Equal(0, _collections);

        _time.Advance(ReloadCollections.QuietTime);
        Assert.Equal(1, _collections);

        _time.Advance(ReloadCollections.MaxDelay * 2);
        Assert.Equal(1, _collections); // nothing more without another reload
    }

    [Fact]
    public void ReloadsThatNeverStopStillCollectWithinTheMaxDelay()
    {
        using var collections = Create();
        var step = ReloadCollections.QuietTime / 4;
        for (var elapsed = TimeSpan.Zero; elapsed <= ReloadCollections.MaxDelay + step; elapsed += step)
        {
            collections.Reloaded();
            _time.Advance(step);
        }
        Assert.Equal(1, _collections);
    }

    [Fact]
    public void NoneCollectsNothingAndTheOthersAreMade()
    {
        var logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        Assert.Null(ReloadCollections.Create(ReloadCollection.None, _time, logger));
        using var young = ReloadCollections.Create(ReloadCollection.Young, _time, logger);
        using var full = ReloadCollections.Create(ReloadCollection.Full, _time, logger);
        Assert.NotNull(young);
        Assert.NotNull(full);
    }
}
