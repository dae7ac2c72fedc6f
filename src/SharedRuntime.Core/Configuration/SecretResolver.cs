namespace SharedRuntime.Configuration;

/// <summary>Where secrets referenced by a resource come from while it is parsed (Kubernetes Secrets, say).</summary>
internal delegate string? SecretResolver(string secretName, string key);
