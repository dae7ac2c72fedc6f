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
