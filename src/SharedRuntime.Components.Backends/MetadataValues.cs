using System.Globalization;

namespace SharedRuntime.Components;

/// <summary>Reads typed values from Dapr component metadata, with the formats Dapr accepts.</summary>
internal static class MetadataValues
{
    public static string? String(ComponentContext context, params ReadOnlySpan<string> names)
    {
        foreach (var name in names)
        {
            if (context.GetMetadata(name) is { Length: > 0 } value)
            {
                return value;
            }
        }
        return null;
    }

    public static bool Bool(ComponentContext context, string name, bool fallback) => context.GetMetadata(name) switch
    {
        null or "" => fallback,
        var text when bool.TryParse(text, out var value) => value,
        "1" or "yes" or "on" => true,
        "0" or "no" or "off" => false,
        var text => throw new ComponentException($"metadata '{name}' must be true or false, not '{text}'"),
    };

    public static int Int(ComponentContext context, string name, int fallback) => String(context, name) switch
    {
        null => fallback,
        var text when int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0 => value,
        var text => throw new ComponentException($"metadata '{name}' must be a non-negative integer, not '{text}'"),
    };

    /// <summary>A Go-style duration (<c>500ms</c>, <c>5s</c>, <c>1m30s</c>, <c>1h</c>) or a plain number of seconds.</summary>
    public static TimeSpan Duration(ComponentContext context, string name, TimeSpan fallback)
    {
        var text = String(context, name);
        if (text is null)
        {
            return fallback;
        }
        return global::SharedRuntime.Configuration.Durations.TryParseOrSeconds(text, out var value)
            ? value
            : throw new ComponentException($"metadata '{name}' must be a duration such as 5s or 500ms, not '{text}'");
    }
}
