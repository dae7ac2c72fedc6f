using System.Text;
using System.Text.Json;

namespace SharedRuntime.Configuration;

/// <summary>
/// A resource read as plain objects (mappings as <c>Dictionary&lt;object, object?&gt;</c>, lists as
/// <c>List&lt;object?&gt;</c>, scalars as text; see <see cref="ResourceReader"/>) written back as JSON, which is also YAML.
/// </summary>
internal static class ResourceTree
{
    public static string ToJson(object? node)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            Write(writer, node);
        }
        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    public static void Write(Utf8JsonWriter writer, object? node)
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
