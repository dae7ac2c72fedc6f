using Microsoft.Extensions.Logging;
using SharedRuntime.Admission;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Tenancy;

/// <summary>
/// Builds a set's components: one whose resource is unchanged and that was ready keeps its instance (with its data and
/// guard); any other is created, given its metadata (secretKeyRef and envRef resolved) and initialised within its
/// initTimeout. A component that fails is kept as a failed entry with its problem, so the rest of the set still applies.
/// </summary>
internal sealed class ComponentBuilder(
    IReadOnlyDictionary<string, IComponentFactory> factories,
    IServiceProvider services,
    TimeProvider time,
    ILogger logger,
    Func<string, string?> environment)
{
    public async Task<List<ComponentEntry>> BuildAsync(ResourceSet set, RuntimeSnapshot previous, CancellationToken cancellationToken)
    {
        var result = new List<ComponentEntry>();
        var built = new Dictionary<string, ComponentEntry>(StringComparer.Ordinal);
        // Secret stores first: other components may resolve secretKeyRefs through them.
        foreach (var config in set.Components.OrderBy(c => c.Category == "secretstores" ? 0 : 1))
        {
            if (previous.Components.TryGetValue(config.Key, out var existing) &&
                existing.Config.Fingerprint == config.Fingerprint && existing.Status == ComponentStatus.Ready)
            {
                var kept = existing.Config == config ? existing : new ComponentEntry(config, existing.Instance, null, existing.Guard);
                result.Add(kept);
                built[config.Key] = kept;
                continue;
            }
            var entry = await CreateAsync(config, built, cancellationToken).ConfigureAwait(false);
            result.Add(entry);
            built[config.Key] = entry;
        }
        return result;
    }

    /// <summary>Disposes <paramref name="instance"/>, logging rather than throwing when it fails.</summary>
    public static async Task DisposeQuietlyAsync(ILogger logger, string name, IComponent instance)
    {
        try
        {
            await instance.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            CoreLog.ComponentDisposeFailed(logger, ex, name);
        }
    }

    private async Task<ComponentEntry> CreateAsync(ComponentConfig config, Dictionary<string, ComponentEntry> built, CancellationToken cancellationToken)
    {
        IComponent? instance = null;
        try
        {
            var metadata = await ResolveMetadataAsync(config, built, cancellationToken).ConfigureAwait(false);
            instance = factories[config.Type].Create(new ComponentContext
            {
                Name = config.Name,
                Type = config.Type,
                Version = config.Version,
                Metadata = metadata,
                BaseDirectory = config.BaseDirectory,
                Services = services,
            });
            if (instance is IPubSubBroker broker && config.Namespace is { } ns)
            {
                instance = new NamespacedBroker(broker, ns);
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(config.InitTimeout);
            await instance.InitAsync(timeout.Token).AsTask().WaitAsync(config.InitTimeout, time, cancellationToken).ConfigureAwait(false);
            CoreLog.ComponentReady(logger, config.Name, config.Type);
            return new ComponentEntry(config, instance, null, ComponentGuard.Create(config, time));
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            var problem = ex is TimeoutException or OperationCanceledException
                ? $"initialisation took longer than initTimeout {config.InitTimeout.TotalSeconds}s"
                : ex.Message;
            CoreLog.ComponentFailed(logger, config.Name, config.Type, problem);
            if (instance is not null)
            {
                await DisposeQuietlyAsync(logger, config.Name, instance).ConfigureAwait(false);
            }
            return new ComponentEntry(config, null, problem);
        }
    }

    /// <summary>
    /// A component resolves its secrets only through a store every app it serves may use itself: an unscoped component
    /// needs an unscoped store, a scoped one a store scoped to (at least) the same apps.
    /// </summary>
    private static bool StoreServesEveryApp(ComponentConfig store, ComponentConfig component) =>
        store.Scopes.Count == 0 || (component.Scopes.Count > 0 && component.Scopes.All(store.Scopes.Contains));

    private async Task<IReadOnlyDictionary<string, string>> ResolveMetadataAsync(ComponentConfig config, Dictionary<string, ComponentEntry> built, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in config.Metadata)
        {
            if (item.SecretKeyRef is { } reference)
            {
                if (config.SecretStore is null)
                {
                    throw new ComponentException($"metadata '{item.Name}' uses secretKeyRef but the component names no auth.secretStore");
                }
                // Only a secret store of the component's own namespace resolves its secrets.
                if (!built.TryGetValue(ResourceNamespace.Key(config.SecretStore, config.Namespace), out var storeEntry) || storeEntry.Instance is not ISecretStore store)
                {
                    throw new ComponentException($"secret store '{config.SecretStore}' named in auth.secretStore is not available");
                }
                if (!StoreServesEveryApp(storeEntry.Config, config))
                {
                    throw new ComponentException($"secret store '{config.SecretStore}' named in auth.secretStore is not scoped to every app this component serves");
                }
                var secret = await store.GetSecretAsync(reference.Name, new Dictionary<string, string>(), cancellationToken).ConfigureAwait(false);
                if (secret is null || !secret.TryGetValue(reference.Key, out var value))
                {
                    throw new ComponentException($"metadata '{item.Name}': secret '{reference.Name}' key '{reference.Key}' not found in '{config.SecretStore}'");
                }
                result[item.Name] = value;
            }
            else if (item.EnvRef is { } variable)
            {
                result[item.Name] = environment(variable) ?? throw new ComponentException($"metadata '{item.Name}': environment variable '{variable}' is not set");
            }
            else
            {
                result[item.Name] = item.Value ?? "";
            }
        }
        return result;
    }
}
