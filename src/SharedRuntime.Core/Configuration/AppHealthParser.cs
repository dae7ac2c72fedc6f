namespace SharedRuntime.Configuration;

/// <summary>
/// Parses a Tenant's app health check, spelt as Dapr's options are (<c>--enable-app-health-check</c> and the rest) in
/// the Tenant's spec: <c>enableAppHealthCheck</c>, <c>appHealthCheckPath</c>, <c>appHealthProbeInterval</c>,
/// <c>appHealthProbeTimeout</c>, <c>appHealthThreshold</c>. A duration is Go-style (<c>5s</c>, <c>500ms</c>) or a
/// whole number in Dapr's unit: seconds for the interval, milliseconds for the timeout.
/// </summary>
internal static class AppHealthParser
{
    /// <summary>The app health check of <paramref name="spec"/>, or null when it is not enabled.</summary>
    public static AppHealthConfig? Parse(ResourceNode spec, string? appEndpoint)
    {
        var enabled = spec["enableAppHealthCheck"].AsBool() ?? false;
        var defaults = AppHealthConfig.Default;
        var path = spec["appHealthCheckPath"];
        var interval = spec["appHealthProbeInterval"];
        var timeout = spec["appHealthProbeTimeout"];
        var threshold = spec["appHealthThreshold"];
        if (!enabled)
        {
            foreach (var node in (ReadOnlySpan<ResourceNode>)[path, interval, timeout, threshold])
            {
                if (!node.IsMissing)
                {
                    throw node.Error("has no effect unless enableAppHealthCheck is true");
                }
            }
            return null;
        }
        if (appEndpoint is null)
        {
            throw spec["enableAppHealthCheck"].Error("needs an appEndpoint: there is no app to probe");
        }
        var config = new AppHealthConfig
        {
            Path = Path(path) ?? defaults.Path,
            ProbeInterval = Duration(interval, TimeSpan.TicksPerSecond, AppHealthConfig.MinProbeInterval, AppHealthConfig.MaxProbeInterval) ?? defaults.ProbeInterval,
            ProbeTimeout = Duration(timeout, TimeSpan.TicksPerMillisecond, AppHealthConfig.MinProbeTimeout, AppHealthConfig.MaxProbeTimeout) ?? defaults.ProbeTimeout,
            Threshold = (int?)threshold.AsInt64(1, AppHealthConfig.MaxThreshold) ?? defaults.Threshold,
        };
        if (config.ProbeTimeout >= config.ProbeInterval)
        {
            throw (timeout.IsMissing ? interval : timeout).Error(
                $"the probe timeout ({Show(config.ProbeTimeout)}) must be shorter than the probe interval ({Show(config.ProbeInterval)})");
        }
        return config;
    }

    private static string? Path(ResourceNode node)
    {
        var value = node.AsString();
        if (value is null)
        {
            return null;
        }
        if (value.Length is 0 or > AppHealthConfig.MaxPathLength || value[0] != '/' || value.AsSpan().IndexOfAnyExcept(PathChars) >= 0)
        {
            throw node.Error($"'{value}' is not a path: it must start with '/', be at most {AppHealthConfig.MaxPathLength} characters and hold only visible ASCII but '#' (percent-encode the rest)");
        }
        return value;
    }

    /// <summary>Visible ASCII but '#' (a fragment never reaches the app) and space.</summary>
    private static readonly System.Buffers.SearchValues<char> PathChars =
        System.Buffers.SearchValues.Create("!\"$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~");

    private static TimeSpan? Duration(ResourceNode node, long ticksPerUnit, TimeSpan min, TimeSpan max)
    {
        var text = node.AsString();
        if (text is null)
        {
            return null;
        }
        TimeSpan value;
        if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var whole))
        {
            value = whole > max.Ticks / ticksPerUnit ? TimeSpan.MaxValue : TimeSpan.FromTicks(whole * ticksPerUnit);
        }
        else if (!Durations.TryParse(text, out value))
        {
            throw node.Error($"'{text}' is not a duration (for example 500ms, 5s)");
        }
        if (value < min || value > max)
        {
            throw node.Error($"{(value == TimeSpan.MaxValue ? text : Show(value))} is out of range ({Show(min)} to {Show(max)})");
        }
        return value;
    }

    private static string Show(TimeSpan value) =>
        value.TotalMilliseconds < 1000 || value.Milliseconds != 0
            ? $"{value.TotalMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}ms"
            : $"{value.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}s";
}
