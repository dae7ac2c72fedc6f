using System.Text.Json;
using SharedRuntime.Configuration;
using SharedRuntime.Kubernetes.Watching;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// The Secret keys the watched resources name, each in the resource's own namespace: a Tenant's
/// <c>spec.apiToken.secretKeyRef</c> and <c>spec.appChannel.appApiToken.secretKeyRef</c>, and a Component's
/// <c>secretKeyRef</c> metadata when it names no <c>auth.secretStore</c> or names <c>kubernetes</c>, and an HTTPEndpoint's
/// <c>spec.headers[].secretKeyRef</c>. Nothing else is read.
/// </summary>
internal static class SecretReferences
{
    public static List<SecretReference> Collect(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds)
    {
        var references = new List<SecretReference>();
        foreach (var (kind, objects) in kinds)
        {
            foreach (var obj in objects)
            {
                var ns = Text(Property(obj, "metadata"), "namespace") ?? "";
                var spec = Property(obj, "spec");
                if (kind.Kind == TenantConfig.KindName)
                {
                    Add(references, ns, Property(Property(spec, "apiToken"), "secretKeyRef"), defaultKey: false);
                    Add(references, ns, Property(Property(Property(spec, "appChannel"), "appApiToken"), "secretKeyRef"), defaultKey: false);
                }
                else if (kind.Kind == HttpEndpointConfig.KindName && Property(spec, "headers") is { ValueKind: JsonValueKind.Array } headers)
                {
                    foreach (var header in headers.EnumerateArray())
                    {
                        Add(references, ns, Property(header, "secretKeyRef"), defaultKey: false);
                    }
                }
                else if (kind.Kind == ComponentConfig.KindName &&
                         Text(Property(obj, "auth"), "secretStore") is null or "kubernetes" &&
                         Property(spec, "metadata") is { ValueKind: JsonValueKind.Array } items)
                {
                    foreach (var item in items.EnumerateArray())
                    {
                        Add(references, ns, Property(item, "secretKeyRef"), defaultKey: true);
                    }
                }
            }
        }
        return references;
    }

    /// <summary>A Kubernetes object name (DNS subdomain): anything else is never asked for.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 253 && char.IsAsciiLetterLower(name[0]) | char.IsAsciiDigit(name[0]) &&
        char.IsAsciiLetterLower(name[^1]) | char.IsAsciiDigit(name[^1]) &&
        name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.');

    private static void Add(List<SecretReference> references, string ns, JsonElement reference, bool defaultKey)
    {
        if (Text(reference, "name") is { } name && (Text(reference, "key") ?? (defaultKey ? name : null)) is { } key && IsValidName(name))
        {
            references.Add(new SecretReference(ns, name, key));
        }
    }

    private static JsonElement Property(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value : default;

    private static string? Text(JsonElement element, string name) =>
        Property(element, name) is { ValueKind: JsonValueKind.String } value ? value.GetString() : null;
}
