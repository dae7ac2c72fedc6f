using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Metrics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Tests.Configuration;

/// <summary>
/// A reload from resource files reads again only the files that changed, and rebuilds only the tenants they hold: the
/// others keep their objects and limiter state, and what a user relies on (changes apply, removals remove, a broken
/// file is refused and the last good state stays) is as it was when every reload read everything.
/// </summary>
public sealed class IncrementalReloadTests : IAsyncLifetime
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(10);
    private readonly FakeTimeProvider _time = new();
    private readonly string _folder = Directory.CreateTempSubdirectory("reload-").FullName;
    private readonly Dictionary<string, string?> _environment = new(StringComparer.Ordinal);
    private ServiceProvider _services = null!;
    private RuntimeConfiguration _configuration = null!;

    public Task InitializeAsync()
    {
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _configuration = new RuntimeConfiguration([new FakeFactory()], _services, _time, NullLogger<RuntimeConfiguration>.Instance,
            new RuntimeMetrics(_services.GetRequiredService<IMeterFactory>()), TenantLimits.Defaults)
        {
            DrainTime = TimeSpan.Zero,
            LastGood = new LastGoodResourceCache(Path.Combine(_folder, ".state"), [_folder]),
        };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _configuration.DisposeAsync();
        await _services.DisposeAsync();
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>
    /// Starts on the folder. The tests that reload by hand get a watcher that waits an hour before it reloads: one of its
    /// own reloads, landing between a test's reload and its assertions, would put a snapshot with no changes in between.
    /// </summary>
    private Task StartAsync(bool watch = false)
    {
        var wait = watch ? (TimeSpan?)null : TimeSpan.FromHours(1);
        var source = new FileResourceSource([_folder], _time, name => _environment.GetValueOrDefault(name),
            quietTime: wait, scanInterval: wait, maxQuietTime: wait);
        return _configuration.StartAsync(source, CancellationToken.None);
    }

    private void Write(string file, string yaml)
    {
        // Written aside and renamed in, as editors and ConfigMaps do, with a write time of its own.
        var temp = Path.Combine(_folder, $".{file}.tmp");
        File.WriteAllText(temp, yaml);
        File.SetLastWriteTimeUtc(temp, new DateTime(2030, 1, 1, 0, 0, 0, DateTimeKind.Utc).AddSeconds(Interlocked.Increment(ref _writes)));
        File.Move(temp, Path.Combine(_folder, file), overwrite: true);
    }

    private int _writes;

    private TenantContext? Find(string token) => _configuration.Current.FindByToken(token);

    private static string Store => Resources.Component("store", "state.fake");

    [Fact]
    public async Task AChangedTenantFileTakesEffect()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        Write("b.yaml", Resources.Tenant("b", "b-token", "burst: 5"));
        await StartAsync();
        Assert.Equal(5, Find("b-token")!.Limits.Burst);

        Write("b.yaml", Resources.Tenant("b", "b-token-2", "burst: 7"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.Null(Find("b-token"));
        Assert.Equal(7, Find("b-token-2")!.Limits.Burst);
        Assert.Equal("a", Find("a-token")!.AppId);
    }

    [Fact]
    public async Task AnUnchangedTenantKeepsItsObjectsAndLimiterStateAcrossAReloadOfAnotherFile()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token", "burst: 2\nrequestsPerSecond: 0.001"));
        await StartAsync();
        var before = Find("a-token")!;
        Assert.True(before.Admission.TryTakeToken(out _));
        Assert.True(before.Admission.TryTakeToken(out _));

        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.NotNull(Find("b-token"));
        var after = Find("a-token")!;
        Assert.Same(before, after);
        Assert.Same(before.Config, after.Config); // its file was not parsed again
        Assert.Same(before.Routes, after.Routes);
        Assert.False(after.Admission.TryTakeToken(out _)); // the burst it spent is still spent
    }

    [Fact]
    public async Task AnAddedTenantIsTheOnlyChangeTheNewSnapshotMakesAndEveryOtherTenantIsFoundAsBefore()
    {
        Write("store.yaml", Store);
        Write("many.yaml", string.Join("\n---\n", Enumerable.Range(0, 200).Select(i => Resources.Tenant($"t{i}", $"t{i}-token"))));
        await StartAsync();
        var before = _configuration.Current;

        Write("new.yaml", Resources.Tenant("new", "new-token"));
        await _configuration.ReloadAsync(CancellationToken.None);

        var after = _configuration.Current;
        var changes = after.Changes!;
        Assert.Equal("new", Assert.Single(changes.Updated).After.AppId);
        Assert.Null(changes.Updated[0].Before);
        Assert.Empty(changes.Removed);
        Assert.Equal(201, after.Tenants.Count);
        Assert.Equal("new", Find("new-token")!.AppId);
        Assert.All(Enumerable.Range(0, 200), i => Assert.Same(before.Tenants[$"t{i}"], Find($"t{i}-token")));

        File.Delete(Path.Combine(_folder, "new.yaml"));
        await _configuration.ReloadAsync(CancellationToken.None);
        Assert.Equal("new", Assert.Single(_configuration.Current.Changes!.Removed).AppId);
        Assert.Null(Find("new-token"));
        Assert.Equal(200, _configuration.Current.Tenants.Count);
    }

    [Fact]
    public async Task ARemovedFileRemovesItsTenant()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await StartAsync();
        var a = Find("a-token");

        File.Delete(Path.Combine(_folder, "b.yaml"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.Null(Find("b-token"));
        Assert.False(_configuration.Current.Tenants.ContainsKey("b"));
        Assert.Same(a, Find("a-token"));
    }

    [Fact]
    public async Task ABrokenFileRefusesTheReloadAndKeepsTheLastGoodState()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await StartAsync();
        var snapshot = _configuration.Current;

        Write("b.yaml", "apiVersion: [unclosed\n");
        Write("c.yaml", Resources.Tenant("c", "c-token"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.True(_configuration.RefusedReloads >= 1);
        Assert.Contains("b.yaml", _configuration.LastReloadError);
        Assert.Same(snapshot, _configuration.Current);
        Assert.NotNull(Find("b-token"));
        Assert.Null(Find("c-token"));

        // Mended, the file applies with the one added beside it.
        Write("b.yaml", Resources.Tenant("b", "b-token-2"));
        await _configuration.ReloadAsync(CancellationToken.None);
        Assert.NotNull(Find("b-token-2"));
        Assert.NotNull(Find("c-token"));
        Assert.Same(snapshot.Tenants["a"], _configuration.Current.Tenants["a"]);
    }

    [Fact]
    public async Task ABadComponentInAChangedFileRefusesTheReload()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        await StartAsync();
        var snapshot = _configuration.Current;

        Write("store.yaml", Resources.Component("store", "state.unknown"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.Same(snapshot, _configuration.Current);
        Assert.Contains("spec.type", _configuration.LastReloadError);
    }

    [Fact]
    public async Task ASecondTenantIsUnaffectedByAnotherTenantsFileChurn()
    {
        Write("store.yaml", Store);
        Write("quiet.yaml", Resources.Tenant("quiet", "quiet-token", "burst: 3\nrequestsPerSecond: 0.001"));
        await StartAsync();
        var quiet = Find("quiet-token")!;
        Assert.True(quiet.Admission.TryTakeToken(out _));

        for (var i = 0; i < 20; i++)
        {
            if (i % 5 == 4)
            {
                File.Delete(Path.Combine(_folder, "noisy.yaml"));
            }
            else
            {
                Write("noisy.yaml", Resources.Tenant("noisy", $"noisy-token-{i}", $"burst: {i + 1}"));
            }
            await _configuration.ReloadAsync(CancellationToken.None);
            Assert.Same(quiet, Find("quiet-token"));
        }

        Assert.Same(quiet, _configuration.Current.Tenants["quiet"]);
        Assert.True(quiet.Admission.TryTakeToken(out _));
        Assert.True(quiet.Admission.TryTakeToken(out _));
        Assert.False(quiet.Admission.TryTakeToken(out _)); // three in all: the churn gave it nothing back
        Assert.Null(Find("noisy-token-18"));
        Assert.Equal(0, _configuration.RefusedReloads);
    }

    [Fact]
    public async Task AnUnchangedFileStillReadsTheEnvironmentAgain()
    {
        _environment["A_TOKEN"] = "first";
        Write("store.yaml", Store);
        Write("a.yaml", """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: a
            spec:
              apiToken:
                env: A_TOKEN
            """);
        await StartAsync();
        Assert.NotNull(Find("first"));

        _environment["A_TOKEN"] = "second";
        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.Null(Find("first"));
        Assert.NotNull(Find("second"));
    }

    [Fact]
    public async Task AConfigMapStyleSwapOfTheDataFolderIsRead()
    {
        // Kubernetes mounts a ConfigMap as links through ..data, and swaps ..data to a new folder on a change.
        var v1 = Directory.CreateDirectory(Path.Combine(_folder, "..v1")).FullName;
        File.WriteAllText(Path.Combine(v1, "tenants.yaml"), Store + Resources.Tenant("a", "a-token"));
        File.CreateSymbolicLink(Path.Combine(_folder, "..data"), v1);
        File.CreateSymbolicLink(Path.Combine(_folder, "tenants.yaml"), Path.Combine(_folder, "..data", "tenants.yaml"));
        await StartAsync();
        Assert.NotNull(Find("a-token"));

        var v2 = Directory.CreateDirectory(Path.Combine(_folder, "..v2")).FullName;
        File.WriteAllText(Path.Combine(v2, "tenants.yaml"), Store + Resources.Tenant("a", "a-token-2"));
        File.Delete(Path.Combine(_folder, "..data")); // the link, not the folder it points to
        File.CreateSymbolicLink(Path.Combine(_folder, "..data"), v2);
        await _configuration.ReloadAsync(CancellationToken.None);

        Assert.Null(Find("a-token"));
        Assert.NotNull(Find("a-token-2"));
    }

    [Fact]
    public async Task ANewFileIsAppliedByTheWatcherAndTheLastGoodCacheHoldsIt()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        await StartAsync(watch: true);

        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await Eventually.TrueAsync(() => Task.FromResult(Find("b-token") is not null), Soon);

        // The cache is written once the new configuration is in place.
        await Eventually.TrueAsync(async () => (await _configuration.LastGood!.LoadAsync(CancellationToken.None)).Tenants.Count == 2, Soon);
        var cached = await _configuration.LastGood!.LoadAsync(CancellationToken.None);
        Assert.Equal(["a", "b"], cached.Tenants.Select(t => t.AppId).Order());
        Assert.DoesNotContain("b-token", File.ReadAllText(_configuration.LastGood.FilePath), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFolderThatCannotBeWatchedIsStillReloadedByTheScanAndTheWarningNamesIt()
    {
        Write("store.yaml", Store);
        Write("a.yaml", Resources.Tenant("a", "a-token"));
        var logger = new ListLogger();
        var source = new FileResourceSource([_folder], _time, name => _environment.GetValueOrDefault(name),
            quietTime: TimeSpan.FromMilliseconds(10), scanInterval: TimeSpan.FromMilliseconds(50), logger: logger)
        {
            // What a node whose inotify instances are used up answers.
            StartWatcher = _ => throw new IOException("The configured user limit (128) on the number of inotify instances has been reached"),
        };
        await _configuration.StartAsync(source, CancellationToken.None);
        Assert.NotNull(Find("a-token"));
        var warning = Assert.Single(logger.Entries);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains(_folder, warning.Message, StringComparison.Ordinal);
        Assert.Contains("inotify", warning.Message, StringComparison.Ordinal);

        Write("b.yaml", Resources.Tenant("b", "b-token"));
        await Eventually.TrueAsync(() => Task.FromResult(Find("b-token") is not null), Soon);
        File.Delete(Path.Combine(_folder, "a.yaml"));
        await Eventually.TrueAsync(() => Task.FromResult(Find("a-token") is null), Soon);
    }

    private sealed class ListLogger : ILogger
    {
        public List<(LogLevel Level, string Message)> Entries { get; } = [];

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Entries)
            {
                Entries.Add((logLevel, formatter(state, exception)));
            }
        }
    }

    [Fact]
    public async Task IdleTenantsWithTheDefaultLimitsShareTheirLimitsButEachKeepsItsOwnAdmissionAndState()
    {
        Write("store.yaml", Store);
        Write("many.yaml", string.Join("\n---\n", Enumerable.Range(0, 3).Select(i => Resources.Tenant($"t{i}", $"t{i}-token"))));
        Write("own.yaml", Resources.Tenant("own", "own-token", "burst: 5"));
        await StartAsync();
        var (t0, t1, own) = (Find("t0-token")!, Find("t1-token")!, Find("own-token")!);

        Assert.Same(TenantLimits.Defaults, t0.Limits);
        Assert.Same(t0.Limits, t1.Limits);
        Assert.Same(TenantLimitsConfig.Empty, t0.Config.Limits);
        Assert.Equal(5, own.Limits.Burst);
        Assert.NotSame(t0.Admission, t1.Admission);
        Assert.NotSame(t0.Admission.Bulkhead, t1.Admission.Bulkhead);
        Assert.NotSame(t0.Memory, t1.Memory);
        Assert.NotSame(t0.State, t1.State);

        // Sharing the limits shares no limiter state: one tenant's spent burst is its own.
        while (t0.Admission.TryTakeToken(out _))
        {
        }
        Assert.True(t1.Admission.TryTakeToken(out _));
    }

    [Fact]
    public async Task ExtendedMetadataSetByOneTenantIsNotSeenByAnother()
    {
        Write("store.yaml", Store);
        Write("many.yaml", string.Join("\n---\n", Enumerable.Range(0, 2).Select(i => Resources.Tenant($"t{i}", $"t{i}-token"))));
        await StartAsync();
        var (t0, t1) = (Find("t0-token")!, Find("t1-token")!);
        Assert.Empty(t0.State.ExtendedMetadata);

        t0.State.ExtendedMetadataToSet["k"] = "v";

        Assert.Equal("v", t0.State.ExtendedMetadata["k"]);
        Assert.Empty(t1.State.ExtendedMetadata);
        Assert.Same(t0.State.StateUsage, t0.State.StateUsage);
        Assert.NotSame(t0.State.StateUsage, t1.State.StateUsage);

        // The state outlives a reload that leaves the tenant as it was.
        Write("new.yaml", Resources.Tenant("new", "new-token"));
        await _configuration.ReloadAsync(CancellationToken.None);
        Assert.Equal("v", Find("t0-token")!.State.ExtendedMetadata["k"]);
        Assert.Empty(Find("new-token")!.State.ExtendedMetadata);
    }

    private sealed class FakeFactory : IComponentFactory
    {
        public IReadOnlyCollection<string> Types { get; } = ["state.fake"];

        public IComponent Create(ComponentContext context) => new FakeComponent();
    }

    private sealed class FakeComponent : IComponent
    {
        public IReadOnlyList<string> Capabilities => [];

        public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
