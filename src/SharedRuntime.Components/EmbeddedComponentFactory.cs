using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Components.Bindings;
using SharedRuntime.Components.PubSub;
using SharedRuntime.Components.Secrets;
using SharedRuntime.Components.State;

namespace SharedRuntime.Components;

internal sealed class EmbeddedComponentFactory(TimeProvider time, IServiceProvider services) : IComponentFactory
{
    public IReadOnlyCollection<string> Types { get; } =
        ["state.in-memory", "state.sqlite", "pubsub.in-memory", "secretstores.local.env", "secretstores.local.file", "bindings.http", "configuration.in-memory", "lock.in-memory", "bindings.cron"];

    public IComponent Create(ComponentContext context) => context.Type switch
    {
        "state.in-memory" => new InMemoryStateStore(time),
        "state.sqlite" => new SqliteStateStore(context, time),
        "pubsub.in-memory" => new InMemoryBroker(context, time),
        "secretstores.local.env" => new EnvSecretStore(context),
        "secretstores.local.file" => new FileSecretStore(context),
        "bindings.http" => new HttpOutputBinding(context, services.GetService<IHttpClientFactory>()),
        "configuration.in-memory" => new Configuration.InMemoryConfigurationStore(context),
        "lock.in-memory" => Lock.InMemoryLockStore.Create(context, time),
        "bindings.cron" => new CronInputBinding(context, time,
            (services.GetService<ILoggerFactory>() ?? NullLoggerFactory.Instance).CreateLogger<CronInputBinding>()),
        _ => throw new ComponentException($"unknown component type {context.Type}"),
    };
}
