namespace SharedRuntime.Configuration;

/// <summary>One YAML document from a resource file, before it is typed.</summary>
internal sealed class RawResource
{
    public required string File { get; init; }
    public required int Index { get; init; }
    public required string ApiVersion { get; init; }
    public required string Kind { get; init; }
    public required string Name { get; init; }
    public required object? Root { get; init; }

    /// <summary>The Kubernetes namespace the resource lives in; null for resource files (one namespace, as standalone Dapr).</summary>
    public string? Namespace { get; init; }

    public string Document => Name.Length > 0 ? $"{Kind}/{Name}" : $"document {Index + 1}";

    public ResourceNode Node => new(this, "", Root);

    public ResourceException Error(string? field, string problem) => new(File, Document, string.IsNullOrEmpty(field) ? null : field, problem);
}
