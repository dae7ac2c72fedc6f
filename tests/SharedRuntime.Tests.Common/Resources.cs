namespace SharedRuntime.Tests;

/// <summary>Resource YAML for tests.</summary>
public static class Resources
{
    public static string Tenant(string appId, string token, string? limits = null, string? appEndpoint = null) => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: {appId}
        spec:
          appId: {appId}
          apiToken:
            value: "{token}"
        {(appEndpoint is null ? "" : $"  appEndpoint: {appEndpoint}\n")}{(limits is null ? "" : "  limits:\n" + string.Join("\n", limits.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => "    " + l.Trim())))}
        ---

        """;

    public static string Component(string name, string type, IReadOnlyDictionary<string, string>? metadata = null, IReadOnlyList<string>? scopes = null)
    {
        var meta = metadata is null || metadata.Count == 0
            ? ""
            : "  metadata:\n" + string.Concat(metadata.Select(kv => $"    - name: {kv.Key}\n      value: \"{kv.Value}\"\n"));
        var scopeText = scopes is null ? "" : "scopes:\n" + string.Concat(scopes.Select(s => $"  - {s}\n"));
        return $"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: {name}
            spec:
              type: {type}
              version: v1
            {meta}{scopeText}---

            """;
    }
}
