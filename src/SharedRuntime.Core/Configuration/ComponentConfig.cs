namespace SharedRuntime.Configuration;

/// <summary>A Dapr <c>Component</c> resource (dapr.io/v1alpha1).</summary>
public sealed record ComponentConfig
{
    public const string ApiVersion = "dapr.io/v1alpha1";
    public const string KindName = "Component";

    public required string Name { get; init; }
    public required string Type { get; init; }
    public required string Version { get; init; }
    public required IReadOnlyList<ComponentMetadataItem> Metadata { get; init; }

    /// <summary>App-ids that may use it; empty means every app.</summary>
    public required IReadOnlyList<string> Scopes { get; init; }

    public TimeSpan InitTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public bool IgnoreErrors { get; init; }

    /// <summary>Secret store that resolves this component's secretKeyRefs (<c>auth.secretStore</c>).</summary>
    public string? SecretStore { get; init; }

    public string? BaseDirectory { get; init; }

    /// <summary>The Kubernetes namespace it lives in and applies to; null for resource files (standalone: one namespace).</summary>
    public string? Namespace { get; init; }

    /// <summary>What names it among the components of every namespace: <c>namespace/name</c>, or the name alone.</summary>
    public string Key => ResourceNamespace.Key(Name, Namespace);
    public required string Source { get; init; }

    /// <summary>The building block: the part of <see cref="Type"/> before the first dot (state, pubsub, ...).</summary>
    public string Category => Type.Split('.', 2)[0];

    /// <summary>A text that is equal for two configurations exactly when they build the same component.</summary>
    public string Fingerprint =>
        string.Join('\n',
            new[] { Namespace ?? "", Name, Type, Version, InitTimeout.Ticks.ToString(System.Globalization.CultureInfo.InvariantCulture), IgnoreErrors.ToString(), SecretStore ?? "", BaseDirectory ?? "" }
                .Concat(Metadata.Select(m => $"{m.Name}={m.Value}|{m.EnvRef}|{m.SecretKeyRef?.Name}/{m.SecretKeyRef?.Key}")));
}

public sealed record SecretKeyRef(string Name, string Key);

/// <summary>One <c>spec.metadata</c> entry: a value, an environment variable, or a secret reference.</summary>
public sealed record ComponentMetadataItem(string Name, string? Value, string? EnvRef = null, SecretKeyRef? SecretKeyRef = null);
