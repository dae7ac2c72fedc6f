namespace SharedRuntime.Components.PubSub;

/// <summary>Orders stream entry ids (<c>ms-seq</c>) numerically.</summary>
internal sealed class StreamIds : IComparer<string>
{
    public static readonly StreamIds Comparer = new();

    public int Compare(string? x, string? y) => Parse(x).CompareTo(Parse(y));

    private static (ulong, ulong) Parse(string? id)
    {
        var dash = id?.IndexOf('-') ?? -1;
        return dash < 0
            ? (ulong.Parse(id ?? "0", System.Globalization.CultureInfo.InvariantCulture), 0)
            : (ulong.Parse(id.AsSpan(0, dash), System.Globalization.CultureInfo.InvariantCulture), ulong.Parse(id.AsSpan(dash + 1), System.Globalization.CultureInfo.InvariantCulture));
    }
}
