using System.Globalization;
using SharedRuntime.Configuration;

namespace SharedRuntime.Components.Bindings;

/// <summary>
/// A schedule in the formats Dapr's cron binding accepts: six fields with seconds (<c>30 * * * * *</c>) or five without
/// (<c>*/15 * * * *</c>, seconds 0); each field <c>*</c>, <c>?</c> (days), numbers, ranges <c>a-b</c>, steps <c>*/n</c>,
/// <c>a-b/n</c>, <c>a/n</c>, lists with commas, month names JAN-DEC and weekday names SUN-SAT (weekday 7 is Sunday as
/// well); an optional <c>CRON_TZ=Zone</c> or <c>TZ=Zone</c> prefix (IANA names, default UTC); the descriptors
/// <c>@yearly</c>/<c>@annually</c>, <c>@monthly</c>, <c>@weekly</c>, <c>@daily</c>/<c>@midnight</c>, <c>@hourly</c>;
/// and <c>@every &lt;duration&gt;</c> (Go durations, whole seconds, at least one). When both day of month and weekday
/// are restricted either may match; otherwise both must (as in cron). <c>@every</c> fires at multiples of its period
/// since the Unix epoch, so that every runtime of a cluster has the same ticks.
/// </summary>
internal sealed class CronSchedule
{
    /// <summary>A schedule longer than this is refused (component metadata, but parsed with the same care as any input).</summary>
    public const int MaxLength = 1024;

    private const int YearsAhead = 5;

    private static readonly string[] MonthNames = ["", "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
    private static readonly string[] DayNames = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    private readonly ulong _seconds;
    private readonly ulong _minutes;
    private readonly ulong _hours;
    private readonly ulong _days;
    private readonly ulong _months;
    private readonly ulong _weekdays;
    private readonly bool _eitherDayMatches;
    private readonly long _everySeconds;

    private CronSchedule(string text, TimeZoneInfo zone, long everySeconds)
    {
        Text = text;
        Zone = zone;
        _everySeconds = everySeconds;
    }

    private CronSchedule(string text, TimeZoneInfo zone, ulong seconds, ulong minutes, ulong hours, ulong days, ulong months, ulong weekdays, bool eitherDayMatches)
        : this(text, zone, 0)
    {
        _seconds = seconds;
        _minutes = minutes;
        _hours = hours;
        _days = days;
        _months = months;
        _weekdays = weekdays;
        _eitherDayMatches = eitherDayMatches;
    }

    public string Text { get; }

    /// <summary>The time zone the fields are read in.</summary>
    public TimeZoneInfo Zone { get; }

    /// <summary>The period of an <c>@every</c> schedule; null for one given by fields.</summary>
    public TimeSpan? Every => _everySeconds > 0 ? TimeSpan.FromSeconds(_everySeconds) : null;

    /// <summary>Parses <paramref name="text"/>; a schedule Dapr would refuse throws <see cref="FormatException"/> saying why.</summary>
    public static CronSchedule Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > MaxLength)
        {
            throw new FormatException($"the schedule is longer than {MaxLength} characters");
        }
        var spec = text.Trim();
        if (spec.Length == 0)
        {
            throw new FormatException("the schedule is empty");
        }
        var zone = TimeZoneInfo.Utc;
        if (spec.StartsWith("CRON_TZ=", StringComparison.Ordinal) || spec.StartsWith("TZ=", StringComparison.Ordinal))
        {
            var space = spec.IndexOf(' ', StringComparison.Ordinal);
            if (space < 0)
            {
                throw new FormatException("a time zone prefix must be followed by a schedule");
            }
            zone = FindZone(spec[(spec.IndexOf('=', StringComparison.Ordinal) + 1)..space]);
            spec = spec[(space + 1)..].Trim();
        }
        if (spec.StartsWith('@'))
        {
            return Descriptor(text, spec, zone);
        }
        var fields = spec.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length == 5)
        {
            fields = ["0", .. fields];
        }
        if (fields.Length != 6)
        {
            throw new FormatException($"expected 5 or 6 fields (seconds optional), found {fields.Length}");
        }
        var (seconds, _) = Field(fields[0], 0, 59, null, "second");
        var (minutes, _) = Field(fields[1], 0, 59, null, "minute");
        var (hours, _) = Field(fields[2], 0, 23, null, "hour");
        var (days, dayStar) = Field(fields[3], 1, 31, null, "day of month");
        var (months, _) = Field(fields[4], 1, 12, MonthNames, "month");
        var (weekdays, weekdayStar) = Field(fields[5], 0, 7, DayNames, "day of week");
        if ((weekdays & (1UL << 7)) != 0)
        {
            weekdays = (weekdays & ~(1UL << 7)) | 1UL; // 7 is Sunday too
        }
        return new CronSchedule(text, zone, seconds, minutes, hours, days, months, weekdays, eitherDayMatches: !dayStar && !weekdayStar);
    }

    private static TimeZoneInfo FindZone(string name)
    {
        if (name is "UTC" or "Etc/UTC" or "")
        {
            return TimeZoneInfo.Utc;
        }
        if (name == "Local")
        {
            return TimeZoneInfo.Local;
        }
        try
        {
            return TimeZoneInfo.FindSystemTimeZoneById(name);
        }
        catch (Exception ex) when (ex is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw new FormatException($"unknown time zone '{name}'", ex);
        }
    }

    private static CronSchedule Descriptor(string text, string spec, TimeZoneInfo zone)
    {
        if (spec.StartsWith("@every ", StringComparison.Ordinal))
        {
            var duration = spec["@every ".Length..].Trim();
            if (!Durations.TryParse(duration, out var period))
            {
                throw new FormatException($"'{duration}' is not a duration such as 15s, 5m or 1h30m");
            }
            return new CronSchedule(text, zone, Math.Max(1, (long)period.TotalSeconds));
        }
        var equivalent = spec switch
        {
            "@yearly" or "@annually" => "0 0 0 1 1 *",
            "@monthly" => "0 0 0 1 * *",
            "@weekly" => "0 0 0 * * 0",
            "@daily" or "@midnight" => "0 0 0 * * *",
            "@hourly" => "0 0 * * * *",
            _ => throw new FormatException($"unknown descriptor '{spec}'"),
        };
        var fields = Parse(equivalent);
        return new CronSchedule(text, zone, fields._seconds, fields._minutes, fields._hours, fields._days, fields._months, fields._weekdays, fields._eitherDayMatches);
    }

    /// <summary>The values of one field as a bit set, and whether it is unrestricted (<c>*</c> or <c>?</c> without a step).</summary>
    private static (ulong Bits, bool Star) Field(string field, int min, int max, string[]? names, string what)
    {
        ulong bits = 0;
        var star = false;
        foreach (var part in field.Split(','))
        {
            var slash = part.IndexOf('/', StringComparison.Ordinal);
            var range = slash < 0 ? part : part[..slash];
            int low, high;
            var isStar = range is "*" or "?";
            if (isStar)
            {
                (low, high) = (min, max);
            }
            else
            {
                var dash = range.IndexOf('-', StringComparison.Ordinal);
                low = Value(dash < 0 ? range : range[..dash], min, max, names, what);
                high = dash < 0 ? (slash < 0 ? low : max) : Value(range[(dash + 1)..], min, max, names, what);
                if (high < low)
                {
                    throw new FormatException($"{what}: range '{range}' ends before it starts");
                }
            }
            var step = 1;
            if (slash >= 0 && (!int.TryParse(part.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out step) || step <= 0))
            {
                throw new FormatException($"{what}: '{part}' has no valid step");
            }
            star |= isStar && step == 1;
            for (long value = low; value <= high; value += step)
            {
                bits |= 1UL << (int)value;
            }
        }
        return (bits, star);
    }

    private static int Value(string text, int min, int max, string[]? names, string what)
    {
        if (names is not null)
        {
            var index = Array.FindIndex(names, n => n.Length > 0 && string.Equals(n, text, StringComparison.OrdinalIgnoreCase));
            if (index >= 0)
            {
                return index;
            }
        }
        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new FormatException($"{what}: '{text}' is not a value from {min} to {max}");
        }
        return value;
    }

    /// <summary>The first time after <paramref name="after"/> (strictly) the schedule fires, in UTC; null when it never does within five years.</summary>
    public DateTimeOffset? Next(DateTimeOffset after)
    {
        if (_everySeconds > 0)
        {
            var seconds = after.ToUnixTimeSeconds();
            return DateTimeOffset.FromUnixTimeSeconds(((seconds / _everySeconds) + 1) * _everySeconds);
        }
        var utc = after.UtcDateTime;
        var start = new DateTime(utc.Ticks - (utc.Ticks % TimeSpan.TicksPerSecond), DateTimeKind.Utc).AddSeconds(1);
        var t = DateTime.SpecifyKind(TimeZoneInfo.ConvertTimeFromUtc(start, Zone), DateTimeKind.Unspecified);
        var lastYear = t.Year + YearsAhead;
        while (t.Year <= lastYear)
        {
            if (!Has(_months, t.Month))
            {
                t = new DateTime(t.Year, t.Month, 1, 0, 0, 0, DateTimeKind.Unspecified).AddMonths(1);
                continue;
            }
            if (!DayMatches(t))
            {
                t = t.Date.AddDays(1);
                continue;
            }
            if (!Has(_hours, t.Hour))
            {
                t = t.Date.AddHours(t.Hour + 1);
                continue;
            }
            if (!Has(_minutes, t.Minute))
            {
                t = new DateTime(t.Year, t.Month, t.Day, t.Hour, t.Minute, 0, DateTimeKind.Unspecified).AddMinutes(1);
                continue;
            }
            if (!Has(_seconds, t.Second))
            {
                t = t.AddSeconds(1);
                continue;
            }
            if (ToUtc(t, after) is { } found)
            {
                return found;
            }
            t = t.AddSeconds(1);
        }
        return null;
    }

    /// <summary>
    /// The instant of wall time <paramref name="local"/> in the zone that comes after <paramref name="after"/>: none for a
    /// time a daylight-saving change skips; the earlier one first for a time it repeats.
    /// </summary>
    private DateTimeOffset? ToUtc(DateTime local, DateTimeOffset after)
    {
        if (Zone.IsInvalidTime(local))
        {
            return null;
        }
        if (Zone.IsAmbiguousTime(local))
        {
            foreach (var offset in Zone.GetAmbiguousTimeOffsets(local).OrderByDescending(o => o))
            {
                var candidate = new DateTimeOffset(local, offset);
                if (candidate > after)
                {
                    return candidate.ToUniversalTime();
                }
            }
            return null;
        }
        var instant = new DateTimeOffset(local, Zone.GetUtcOffset(local));
        return instant > after ? instant.ToUniversalTime() : null;
    }

    private bool DayMatches(DateTime t)
    {
        var day = Has(_days, t.Day);
        var weekday = Has(_weekdays, (int)t.DayOfWeek);
        return _eitherDayMatches ? day || weekday : day && weekday;
    }

    private static bool Has(ulong bits, int value) => (bits & (1UL << value)) != 0;

    /// <summary>The shortest time between two of the next <paramref name="firings"/> firings after <paramref name="from"/>; null when it fires less often.</summary>
    public TimeSpan? ShortestGap(DateTimeOffset from, int firings = 16)
    {
        if (Every is { } every)
        {
            return every;
        }
        TimeSpan? shortest = null;
        var previous = Next(from);
        for (var i = 1; i < firings && previous is { } at; i++)
        {
            var next = Next(at);
            if (next is { } n && (shortest is null || n - at < shortest))
            {
                shortest = n - at;
            }
            previous = next;
        }
        return shortest;
    }

    public override string ToString() => Text;
}
