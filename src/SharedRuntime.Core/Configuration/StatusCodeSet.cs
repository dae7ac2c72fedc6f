namespace SharedRuntime.Configuration;

/// <summary>Status codes and ranges written as <c>"429,500-599"</c>.</summary>
public sealed class StatusCodeSet
{
    private readonly (int From, int To)[] _ranges;

    private StatusCodeSet((int, int)[] ranges, string text)
    {
        _ranges = ranges;
        Text = text;
    }

    public string Text { get; }

    public bool Contains(int code)
    {
        foreach (var (from, to) in _ranges)
        {
            if (code >= from && code <= to)
            {
                return true;
            }
        }
        return false;
    }

    public static bool TryParse(string text, int min, int max, out StatusCodeSet? set)
    {
        set = null;
        var ranges = new List<(int, int)>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var bounds = part.Split('-', 2, StringSplitOptions.TrimEntries);
            if (!int.TryParse(bounds[0], out var from) || from < min || from > max)
            {
                return false;
            }
            var to = from;
            if (bounds.Length == 2 && (!int.TryParse(bounds[1], out to) || to < from || to > max))
            {
                return false;
            }
            ranges.Add((from, to));
        }
        set = new StatusCodeSet([.. ranges], text);
        return true;
    }

    public override string ToString() => Text;
}
