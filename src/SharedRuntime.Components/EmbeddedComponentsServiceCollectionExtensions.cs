using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SharedRuntime.Components.Bindings;
using SharedRuntime.Components.PubSub;
using SharedRuntime.Components.Secrets;
using SharedRuntime.Components.State;

namespace SharedRuntime.Components;

internal static class EmbeddedComponentsServiceCollectionExtensions
{
    /// <summary>Registers the components that need nothing installed: in-memory and SQLite state, in-memory pub/sub, env and file secrets, HTTP output binding, cron input binding, in-memory configuration and locks.</summary>
    public static IServiceCollection AddEmbeddedComponents(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IComponentFactory, EmbeddedComponentFactory>();
        return services;
    }
}
