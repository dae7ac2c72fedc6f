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

    /// <summary>What names it among every resource of a set: <c>Kind/namespace/name</c>.</summary>
    public string Identity => _identity ??= $"{Kind}/{ResourceNamespace.Key(Name, Namespace)}";

    /// <summary>
    /// What <see cref="ResourceParser"/> made of this document the last time, reused while the document is (a file that
    /// did not change keeps its documents) and what it read from the environment still reads the same.
    /// </summary>
    internal ParsedResource? Parsed { get; set; }

    private string? _identity;

    public ResourceNode Node => new(this, "", Root);

    public ResourceException Error(string? field, string problem) => new(File, Document, string.IsNullOrEmpty(field) ? null : field, problem);
}
