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

    /// <summary>The tree as JSON text (which is also YAML), for the last-good cache.</summary>
    public static string ToJson(object? node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, node);
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void Write(Utf8JsonWriter writer, object? node)
    {
        switch (node)
        {
            case Dictionary<object, object?> map:
                writer.WriteStartObject();
                foreach (var (key, value) in map)
                {
                    writer.WritePropertyName(key.ToString() ?? "");
                    Write(writer, value);
                }
                writer.WriteEndObject();
                break;
            case List<object?> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    Write(writer, item);
                }
                writer.WriteEndArray();
                break;
            case null:
                writer.WriteNullValue();
                break;
            default:
                writer.WriteStringValue(node.ToString());
                break;
        }
    }
}
