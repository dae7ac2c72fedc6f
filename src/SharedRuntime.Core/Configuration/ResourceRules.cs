using System.Text.RegularExpressions;

namespace SharedRuntime.Configuration;

/// <summary>The small rules every resource parser shares: valid names, positive durations, where a resource came from.</summary>
internal static partial class ResourceRules
{
    [GeneratedRegex("^[a-z0-9]([-a-z0-9._]{0,62}[a-z0-9])?$", RegexOptions.IgnoreCase)]
    public static partial Regex NamePattern();

    /// <summary>Where a resource was read, as resources name it in their messages: "file: document".</summary>
    public static string SourceOf(RawResource raw) => $"{raw.File}: {raw.Document}";

    /// <summary>The duration at <paramref name="node"/>, refusing zero or less.</summary>
    public static TimeSpan? Positive(ResourceNode node)
    {
        var value = node.AsDuration();
        if (value is { } v && v <= TimeSpan.Zero)
        {
            throw node.Error("must be longer than zero");
        }
        return value;
    }
}
