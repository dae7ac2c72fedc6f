using Microsoft.Extensions.DependencyInjection;

namespace SharedRuntime.ComponentTests.State;

/// <summary>Builds state stores the way the runtime does: through the registered component factories.</summary>
internal static class StateStores
{
    private static readonly ServiceProvider Services = new ServiceCollection()
        .AddLogging()
        .AddEmbeddedComponents()
        .AddBackendComponents()
        .BuildServiceProvider();

    public static async Task<IStateStore> CreateAsync(string type, IReadOnlyDictionary<string, string> metadata)
    {
        var factory = Services.GetServices<IComponentFactory>().Single(f => f.Types.Contains(type));
        var store = (IStateStore)factory.Create(new ComponentContext
        {
            Name = "statestore",
            Type = type,
            Version = "v1",
            Metadata = metadata,
            Services = Services,
        });
        await store.InitAsync(CancellationToken.None).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
        return store;
    }
}

/// <summary>A timeout on every await of a store call, so a hung store fails the test instead of the run.</summary>
internal static class Within
{
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(10);

    public static Task<T> Timed<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Limit);

    public static Task Timed(this ValueTask task) => task.AsTask().WaitAsync(Limit);
}
