using System.Globalization;

namespace SharedRuntime.Configuration;

/// <summary>
/// A position in a parsed YAML document, remembering its path so that every error names the field.
/// Mappings are <c>Dictionary&lt;object, object?&gt;</c>, sequences <c>List&lt;object?&gt;</c>, scalars strings.
/// </summary>
internal readonly struct ResourceNode
{
    private readonly RawResource _resource;

    public ResourceNode(RawResource resource, string path, object? value)
    {
        _resource = resource;
        Path = path;
        Value = value;
    }

    public string Path { get; }

    public object? Value { get; }

    public bool IsMissing => Value is null;

    public ResourceException Error(string problem) => _resource.Error(Path, problem);

    public ResourceNode this[string name]
    {
        get
        {
            var childPath = Path.Length == 0 ? name : $"{Path}.{name}";
            if (Value is null)
            {
                return new ResourceNode(_resource, childPath, null);
            }
            if (Value is not Dictionary<object, object?> map)
            {
                throw Error("expected a mapping");
            }
            foreach (var (key, child) in map)
            {
                if (key is string s && string.Equals(s, name, StringComparison.Ordinal))
                {
                    return new ResourceNode(_resource, childPath, child);
                }
            }
            return new ResourceNode(_resource, childPath, null);
        }
    }

    public IEnumerable<ResourceNode> Items()
    {
        if (Value is null)
        {
            yield break;
        }
        if (Value is not List<object?> list)
        {
            throw Error("expected a list");
        }
        for (var i = 0; i < list.Count; i++)
        {
            yield return new ResourceNode(_resource, $"{Path}[{i}]", list[i]);
        }
    }

    public IEnumerable<(string Key, ResourceNode Node)> Entries()
    {
        if (Value is null)
        {
            yield break;
        }
        if (Value is not Dictionary<object, object?> map)
        {
            throw Error("expected a mapping");
        }
        foreach (var (key, child) in map)
        {
            var name = key?.ToString() ?? "";
            yield return (name, new ResourceNode(_resource, Path.Length == 0 ? name : $"{Path}.{name}", child));
        }
    }

    public bool IsMapping => Value is Dictionary<object, object?>;

    public string? AsString()
    {
        return Value switch
        {
            null => null,
            string s => s,
            _ => throw Error("expected a single value"),
        };
    }

    public string RequiredString()
    {
        var value = AsString();
        if (string.IsNullOrWhiteSpace(value))
        {
            throw Error("is required");
        }
        return value;
    }

    public long? AsInt64(long min, long max)
    {
        var text = AsString();
        if (text is null)
        {
            return null;
        }
        if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
        {
            throw Error($"'{text}' is not a whole number");
        }
        if (value < min || value > max)
        {
            throw Error($"{value} is out of range ({min} to {max})");
        }
        return value;
    }

    public double? AsDouble(double min, double max)
    {
        var text = AsString();
        if (text is null)
        {
            return null;
        }
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || double.IsNaN(value))
        {
            throw Error($"'{text}' is not a number");
        }
        if (value < min || value > max)
        {
            throw Error($"{value.ToString(CultureInfo.InvariantCulture)} is out of range ({min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)})");
        }
        return value;
    }

    public bool? AsBool()
    {
        var text = AsString();
        if (text is null)
        {
            return null;
        }
        return text.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" or "1" => true,
            "false" or "no" or "off" or "0" => false,
            _ => throw Error($"'{text}' is not true or false"),
        };
    }

    public TimeSpan? AsDuration()
    {
        var text = AsString();
        if (text is null)
        {
            return null;
        }
        if (!Durations.TryParse(text, out var value))
        {
            throw Error($"'{text}' is not a duration (for example 500ms, 5s, 1m30s)");
        }
        return value;
    }

    public IReadOnlyList<string> AsStringList()
    {
        var result = new List<string>();
        foreach (var item in Items())
        {
            result.Add(item.RequiredString());
        }
        return result;
    }
}

/// <summary>
/// Go-style durations as Dapr resources write them: 5s, 100ms, 1m30s, 1h. The one duration reader of the runtime:
/// resources, Resiliency policies and component metadata all read durations here.
/// </summary>
public static class Durations
{
    private static readonly double MaxSeconds = TimeSpan.MaxValue.TotalSeconds;

    /// <summary>
    /// A duration as component metadata writes it: a Go-style duration, or a plain non-negative number of seconds
    /// (<c>30</c>, <c>0.5</c>). Negative, not a number, or longer than a <see cref="TimeSpan"/> holds is not a duration.
    /// </summary>
    public static bool TryParseOrSeconds(string text, out TimeSpan value)
    {
        if (double.TryParse(text.AsSpan().Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds))
        {
            // NaN fails both comparisons; infinities and huge numbers fail the second.
            var fits = seconds >= 0 && seconds < MaxSeconds;
            value = fits ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;
            return fits;
        }
        return TryParse(text, out value);
    }

    public static bool TryParse(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        var span = text.AsSpan().Trim();
        if (span.IsEmpty)
        {
            return false;
        }
        if (span is "0")
        {
            return true;
        }
        double totalMs = 0;
        while (!span.IsEmpty)
        {
            var i = 0;
            while (i < span.Length && (char.IsAsciiDigit(span[i]) || span[i] == '.'))
            {
                i++;
            }
            if (i == 0 || !double.TryParse(span[..i], NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
            {
                return false;
            }
            span = span[i..];
            var j = 0;
            while (j < span.Length && char.IsLetter(span[j]))
            {
                j++;
            }
            var unit = span[..j];
            span = span[j..];
            double factor = unit switch
            {
                "ns" => 1e-6,
                "us" or "µs" => 1e-3,
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                _ => -1,
            };
            if (factor < 0)
            {
                return false;
            }
            totalMs += number * factor;
        }
        // Longer than TimeSpan can hold (99999999999h, say) is not a duration, rather than an overflow.
        if (!(totalMs < TimeSpan.MaxValue.TotalMilliseconds))
        {
            return false;
        }
        value = TimeSpan.FromMilliseconds(totalMs);
        return true;
    }
}
