using System.Globalization;

namespace SharedRuntime.Configuration;

/// <summary>
/// Go-style durations as Dapr resources write them: 5s, 100ms, 1m30s, 1h. The one duration reader of the runtime:
/// resources, Resiliency policies and component metadata all read durations here.
/// </summary>
internal static class Durations
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
