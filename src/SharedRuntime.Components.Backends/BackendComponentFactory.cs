using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Components.Configuration;
using SharedRuntime.Components.Lock;
using SharedRuntime.Components.PubSub;
using SharedRuntime.Components.State;

namespace SharedRuntime.Components;

internal sealed class BackendComponentFactory(TimeProvider time, IServiceProvider services) : IComponentFactory
{
    public IReadOnlyCollection<string> Types { get; } = ["state.redis", "state.postgresql", "pubsub.redis", "pubsub.jetstream", "lock.redis", "configuration.redis"];

    public IComponent Create(ComponentContext context)
    {
        var loggers = services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance;
        return context.Type switch
        {
            "state.redis" => new RedisStateStore(RedisStateOptions.From(context), time, loggers.CreateLogger<RedisStateStore>()),
            "state.postgresql" => new PostgreSqlStateStore(PostgreSqlStateOptions.From(context), time, loggers.CreateLogger<PostgreSqlStateStore>()),
            "pubsub.redis" => new RedisStreamsBroker(RedisPubSubOptions.From(context), time, loggers.CreateLogger<RedisStreamsBroker>()),
            "pubsub.jetstream" => new JetStreamBroker(JetStreamOptions.From(context), time, loggers.CreateLogger<JetStreamBroker>()),
            "lock.redis" => RedisLockStore.Create(context, loggers.CreateLogger<RedisLockStore>()),
            "configuration.redis" => new RedisConfigurationStore(RedisStateOptions.From(context), ConfigurationStoreLimits.From(context), loggers.CreateLogger<RedisConfigurationStore>()),
            _ => throw new ComponentException($"unknown component type {context.Type}"),
        };
    }
}
