using System.Text;
using System.Text.Json;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// Converts API objects (JSON) to the shapes the resource parser reads from YAML: mappings as
/// <c>Dictionary&lt;object, object?&gt;</c>, sequences as <c>List&lt;object?&gt;</c>, every scalar as its text.
/// </summary>
internal static class ObjectTree
{
    public static object? From(JsonElement element) =>
        element.ValueKind switch
        {
            JsonValueKind.Object => element.EnumerateObject().ToDictionary(p => (object)p.Name, p => From(p.Value)),
            JsonValueKind.Array => element.EnumerateArray().Select(From).ToList(),
            JsonValueKind.String => element.GetString(),
            JsonValueKind.Number => element.GetRawText(),
            JsonValueKind.True => "true",
            JsonValueKind.False => "false",
            _ => null,
        };

    public static Dictionary<object, object?>? Map(object? node, string name) =>
        node is Dictionary<object, object?> map && map.TryGetValue(name, out var child) ? child as Dictionary<object, object?> : null;

    public static string? Text(object? node, string name) =>
        node is Dictionary<object, object?> map && map.TryGetValue(name, out var child) ? child as string : null;
}
