namespace SharedRuntime.Components;

internal static class StateKeys
{
    public const string Separator = "||";

    /// <summary>The tenant prefix of a stored key: the part before the first <c>||</c>, or empty.</summary>
    public static ReadOnlySpan<char> PrefixOf(string storedKey)
    {
        var index = storedKey.IndexOf(Separator, StringComparison.Ordinal);
        return index < 0 ? ReadOnlySpan<char>.Empty : storedKey.AsSpan(0, index);
    }
}
