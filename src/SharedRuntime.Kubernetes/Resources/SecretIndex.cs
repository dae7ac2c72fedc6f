namespace SharedRuntime.Kubernetes.Resources;

/// <summary>A Secret by namespace and name.</summary>
internal readonly record struct SecretName(string Namespace, string Name)
{
    public override string ToString() => $"{Namespace}/{Name}";
}

/// <summary>One key of one Secret, named by a resource of the same namespace.</summary>
internal readonly record struct SecretReference(string Namespace, string Name, string Key);

/// <summary>
/// The values of the Secret keys that resources name, as read by name from the API: only those keys are kept, decoded,
/// never the rest of a Secret.
/// </summary>
internal sealed class SecretIndex(IReadOnlyDictionary<SecretName, IReadOnlyDictionary<string, string>> secrets)
{
    public static SecretIndex Empty { get; } = new(new Dictionary<SecretName, IReadOnlyDictionary<string, string>>());

    /// <summary>The value of <paramref name="key"/> in Secret <paramref name="name"/> of <paramref name="namespace"/>, or null.</summary>
    public string? Find(string @namespace, string name, string key) =>
        secrets.TryGetValue(new SecretName(@namespace, name), out var values) && values.TryGetValue(key, out var value) ? value : null;
}
