namespace SharedRuntime.Configuration;

/// <summary>Parses a Component resource: its type, version, metadata (values, envRef, secretKeyRef) and scopes.</summary>
internal static class ComponentParser
{
    public static ComponentConfig Parse(RawResource raw)
    {
        var root = raw.Node;
        if (!ResourceRules.NamePattern().IsMatch(raw.Name))
        {
            throw root["metadata"]["name"].Error($"'{raw.Name}' is not a valid component name");
        }
        var spec = root["spec"];
        var type = spec["type"].RequiredString();
        var version = spec["version"].AsString() ?? "v1";
        var metadata = new List<ComponentMetadataItem>();
        foreach (var item in spec["metadata"].Items())
        {
            var name = item["name"].RequiredString();
            var value = item["value"];
            if (!value.IsMissing && value.Value is not string)
            {
                metadata.Add(new ComponentMetadataItem(name, YamlText(value.Value)));
                continue;
            }
            var text = value.AsString();
            var envRef = item["envRef"].AsString();
            SecretKeyRef? secret = null;
            var secretNode = item["secretKeyRef"];
            if (!secretNode.IsMissing)
            {
                secret = new SecretKeyRef(secretNode["name"].RequiredString(), secretNode["key"].AsString() ?? secretNode["name"].RequiredString());
            }
            if (text is null && envRef is null && secret is null)
            {
                text = "";
            }
            metadata.Add(new ComponentMetadataItem(name, text, envRef, secret));
        }

        var scopes = root["scopes"].AsStringList();
        return new ComponentConfig
        {
            Name = raw.Name,
            Type = type,
            Version = version,
            Metadata = metadata,
            Scopes = scopes,
            InitTimeout = spec["initTimeout"].AsDuration() ?? TimeSpan.FromSeconds(5),
            IgnoreErrors = spec["ignoreErrors"].AsBool() ?? false,
            SecretStore = root["auth"]["secretStore"].AsString(),
            BaseDirectory = Path.GetDirectoryName(Path.GetFullPath(raw.File)),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
    }

    /// <summary>A metadata value as text: a mapping or list given as a value is passed on as its JSON text, as Dapr does.</summary>
    private static string YamlText(object? value) => value is null or string ? (string?)value ?? "" : ResourceTree.ToJson(value);
}
