using System.Collections.Frozen;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tenancy;

public enum ComponentStatus { Ready, Failed }

/// <summary>A configured component and, when it initialised, its instance.</summary>
public sealed class ComponentEntry
{
    private readonly FrozenSet<string> _scopes;

    internal ComponentEntry(ComponentConfig config, IComponent? instance, string? error)
    {
        Config = config;
        Instance = instance;
        Error = error;
        _scopes = config.Scopes.ToFrozenSet(StringComparer.Ordinal);
    }

    public ComponentConfig Config { get; }

    public string Name => Config.Name;

    public string Category => Config.Category;

    public IComponent? Instance { get; }

    public string? Error { get; }

    public ComponentStatus Status => Instance is null ? ComponentStatus.Failed : ComponentStatus.Ready;

    /// <summary>Dapr scopes: an empty list means every app may use it.</summary>
    public bool IsVisibleTo(string appId) => _scopes.Count == 0 || _scopes.Contains(appId);
}
