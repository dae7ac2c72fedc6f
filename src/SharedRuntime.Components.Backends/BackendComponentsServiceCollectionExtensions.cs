using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Components.PubSub;
using SharedRuntime.Components.State;

namespace SharedRuntime.Components;

internal static class BackendComponentsServiceCollectionExtensions
{
    /// <summary>Registers the components that talk to an external server: <c>state.redis</c>, <c>state.postgresql</c>,
    /// <c>pubsub.redis</c>, <c>pubsub.jetstream</c>, <c>lock.redis</c> and <c>configuration.redis</c>.</summary>
    public static IServiceCollection AddBackendComponents(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IComponentFactory, BackendComponentFactory>();
        return services;
    }
}
