using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.Tests.Host;

public sealed class AfterReloadsTests
{
    private readonly FakeTimeProvider _time = new();
    private int _settled;

    private AfterReloads Create() => new(_time, () => Interlocked.Increment(ref _settled));

    [Fact]
    public void ABurstOfReloadsSettlesOnceAfterItsLastReload()
    {
        using var afterReloads = Create();
        for (var i = 0; i < 5; i++)
        {
            afterReloads.Reloaded();
            _time.Advance(AfterReloads.QuietTime / 2);
        }
        Assert.Equal(0, _settled);

        _time.Advance(AfterReloads.QuietTime);
        Assert.Equal(1, _settled);

        _time.Advance(AfterReloads.MaxDelay * 2);
        Assert.Equal(1, _settled); // nothing more without another reload
    }

    [Fact]
    public void ReloadsThatNeverStopStillSettleWithinTheMaxDelay()
    {
        using var afterReloads = Create();
        var step = AfterReloads.QuietTime / 4;
        for (var elapsed = TimeSpan.Zero; elapsed <= AfterReloads.MaxDelay + step; elapsed += step)
        {
            afterReloads.Reloaded();
            _time.Advance(step);
        }
        Assert.Equal(1, _settled);
    }

    [Fact]
    public void NothingIsScheduledWhenNeitherACollectionNorAPageReleaseIsOn()
    {
        Assert.Null(AfterReloads.Create(ReloadCollection.None, null, _time, NullLogger.Instance));
        using var young = AfterReloads.Create(ReloadCollection.Young, null, _time, NullLogger.Instance);
        using var full = AfterReloads.Create(ReloadCollection.Full, null, _time, NullLogger.Instance);
        using var pages = AfterReloads.Create(ReloadCollection.None, new StartupPages(), _time, NullLogger.Instance);
        Assert.NotNull(young);
        Assert.NotNull(full);
        Assert.NotNull(pages);
    }

    [Fact]
    public void ABurstOfReloadsGivesThePagesBackOnceAfterItsCollection()
    {
        // The first reload after start-up mapped about 6 MB of the executable back in (unwind tables the collection the
        // reload triggered read) and nothing gave them back: RSS stayed that much higher.
        List<string> done = [];
        using var afterReloads = AfterReloads.Create(() => done.Add("collect"), () => done.Add("release pages"), _time)!;
        afterReloads.Reloaded();
        _time.Advance(AfterReloads.QuietTime / 2);
        afterReloads.Reloaded();
        Assert.Empty(done);

        _time.Advance(AfterReloads.QuietTime);
        Assert.Equal(["collect", "release pages"], done);

        using var pagesOnly = AfterReloads.Create(null, () => done.Add("pages only"), _time)!;
        pagesOnly.Reloaded();
        _time.Advance(AfterReloads.QuietTime);
        Assert.Equal(["collect", "release pages", "pages only"], done);
    }

    [Fact]
    public void StartupPagesGiveBackAgainOnlyWhatStartupGaveBack()
    {
        var pages = new StartupPages();
        pages.ReleaseAgain(); // before start-up gave anything back: nothing to do, no failure
        Assert.Equal(0, pages.ReleasedMappings);
        var released = pages.Release();
        if (OperatingSystem.IsLinux())
        {
            Assert.True(released > 0); // the test host's assemblies are read-only file mappings
            // Only the executable's own mappings are given back again by address: an assembly's could be unmapped and
            // its addresses reused. The test host has many assembly mappings and few of its executable.
            var executableMappings = File.ReadLines("/proc/self/maps").Count(line => line.EndsWith(" " + Environment.ProcessPath, StringComparison.Ordinal));
            Assert.InRange(pages.ReleasedMappings, 0, executableMappings);
        }
        pages.ReleaseAgain(); // code in those mappings still runs: a page used again comes back from the page cache
        Assert.True(typeof(AfterReloadsTests).Assembly.GetTypes().Length > 0);
    }
}
