namespace SharedRuntime.Configuration;

/// <summary>One YAML document from a resource file, before it is typed.</summary>
internal sealed class RawResource
{
    public required string File { get; init; }
    public required int Index { get; init; }
    public required string ApiVersion { get; init; }
    public required string Kind { get; init; }
    public required string Name { get; init; }
    /// <summary>
    /// The document's tree; null once a source has let it go (<see cref="Release"/>) because <see cref="Parsed"/> holds
    /// what the parsers made of it.
    /// </summary>
    public required object? Root { get; set; }

    /// <summary>The Kubernetes namespace the resource lives in; null for resource files (one namespace, as standalone Dapr).</summary>
    public string? Namespace { get; init; }

    public string Document => Name.Length > 0 ? $"{Kind}/{Name}" : $"document {Index + 1}";

    /// <summary>
    /// What names it among every resource of a set: <c>Kind/namespace/name</c>. Made when asked (a parse asks once per
    /// document) rather than kept with every resident document.
    /// </summary>
    public string Identity => $"{Kind}/{ResourceNamespace.Key(Name, Namespace)}";

    /// <summary>
    /// <paramref name="value"/>, or the runtime's own copy of it when it is a kind or apiVersion the runtime knows: the
    /// thousands of documents of one kind then share one string instead of each keeping the copy its file was read into.
    /// Never a table that grows with what it is given.
    /// </summary>
    public static string Shared(string value) => value switch
    {
        TenantConfig.KindName => TenantConfig.KindName,
        TenantConfig.ApiVersion => TenantConfig.ApiVersion,
        ComponentConfig.KindName => ComponentConfig.KindName,
        ComponentConfig.ApiVersion => ComponentConfig.ApiVersion,
        ResourceParser.DaprApiVersion2 => ResourceParser.DaprApiVersion2,
        SubscriptionConfig.KindName => SubscriptionConfig.KindName,
        ResiliencyConfig.KindName => ResiliencyConfig.KindName,
        ConfigurationResourceConfig.KindName => ConfigurationResourceConfig.KindName,
        HttpEndpointConfig.KindName => HttpEndpointConfig.KindName,
        _ => value,
    };

    /// <summary>
    /// What <see cref="ResourceParser"/> made of this document the last time, reused while the document is (a file that
    /// did not change keeps its documents) and what it read from the environment still reads the same.
    /// </summary>
    internal ParsedResource? Parsed { get; set; }

    /// <summary>Whether the document can be used again as it is: it keeps its tree, or its parsed resource still holds.</summary>
    public bool Reusable(Func<string, string?> environment) => Root is not null || Parsed?.StillValid(environment) == true;

    /// <summary>
    /// Lets the tree go once the document is parsed: what an unchanged file keeps is its typed resource, not a second copy
    /// of it as a tree. A document the parsers did not keep (it failed, or its kind is parsed every time) keeps its tree.
    /// </summary>
    public void Release()
    {
        if (Parsed is not null)
        {
            Root = null;
        }
    }

    public ResourceNode Node => new(this, "", Root);

    public ResourceException Error(string? field, string problem) => new(File, Document, string.IsNullOrEmpty(field) ? null : field, problem);
}
