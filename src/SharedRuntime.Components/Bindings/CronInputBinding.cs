using System.Globalization;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Components.Bindings;

/// <summary>
/// <c>bindings.cron</c>: an input binding that fires on its <c>schedule</c> (see <see cref="CronSchedule"/>). Each tick
/// is one event without data, with Dapr's metadata <c>timeZone</c> and <c>readTimeUTC</c>, delivered by the runtime to
/// every app the component is scoped to as <c>POST /&lt;route&gt;</c> (the component's name unless <c>route</c> is set).
/// A tick's occurrence is its scheduled time, the same in every runtime; with <c>lockStore</c> naming a lock component
/// that every runtime shares (<c>lock.redis</c>), one runtime of the cluster delivers each tick per app. Without it every
/// runtime that serves the app delivers every tick. A tick that could not be read within half of
/// <see cref="ClaimDuration"/> (the process was paused, say) is skipped, not delivered late.
/// </summary>
internal sealed partial class CronInputBinding : IInputBinding
{
    private static readonly TimeSpan MinClaim = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan MaxClaim = TimeSpan.FromSeconds(60);

    private readonly string _name;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public CronInputBinding(ComponentContext context, TimeProvider time, ILogger logger)
    {
        _name = context.Name;
        _time = time;
        _logger = logger;
        var text = context.GetMetadata("schedule");
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new ComponentException("metadata 'schedule' is required (for example \"@every 15s\" or \"0 */5 * * * *\")");
        }
        try
        {
            Schedule = CronSchedule.Parse(text);
        }
        catch (FormatException ex)
        {
            throw new ComponentException($"invalid schedule format '{text}': {ex.Message}", ex);
        }
        var direction = context.GetMetadata("direction");
        if (!string.IsNullOrEmpty(direction) && !direction.Split(',').Any(d => string.Equals(d.Trim(), "input", StringComparison.OrdinalIgnoreCase)))
        {
            throw new ComponentException($"metadata 'direction' is '{direction}', but bindings.cron is an input binding only");
        }
        var route = context.GetMetadata("route");
        Route = string.IsNullOrWhiteSpace(route) ? context.Name : route.Trim().TrimStart('/');
        LockStore = context.GetMetadata("lockStore") is { Length: > 0 } lockStore ? lockStore : null;
        var gap = Schedule.ShortestGap(time.GetUtcNow()) ?? MaxClaim;
        ClaimDuration = gap < MinClaim ? MinClaim : gap > MaxClaim ? MaxClaim : gap;
    }

    public CronSchedule Schedule { get; }

    public string Route { get; }

    public string? LockStore { get; }

    /// <summary>The shortest time between two ticks, within 10 to 60 seconds.</summary>
    public TimeSpan ClaimDuration { get; }

    public IReadOnlyList<string> Capabilities { get; } = [];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public async Task ReadAsync(Func<InputBindingEvent, CancellationToken, ValueTask> onEvent, CancellationToken cancellationToken)
    {
        var latest = ClaimDuration / 2;
        var next = Schedule.Next(_time.GetUtcNow());
        while (next is { } tick && !cancellationToken.IsCancellationRequested)
        {
            try
            {
                for (var now = _time.GetUtcNow(); now < tick; now = _time.GetUtcNow())
                {
                    await Task.Delay(tick - now, _time, cancellationToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            var firedAt = _time.GetUtcNow();
            if (firedAt - tick > latest)
            {
                TickSkipped(_logger, _name, tick, (firedAt - tick).TotalSeconds);
                next = Schedule.Next(firedAt);
                continue;
            }
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["timeZone"] = Schedule.Zone.Id,
                ["readTimeUTC"] = GoTime(firedAt),
            };
            await onEvent(new InputBindingEvent(ReadOnlyMemory<byte>.Empty, metadata, tick.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)), cancellationToken).ConfigureAwait(false);
            next = Schedule.Next(tick);
        }
        if (next is null)
        {
            NeverFires(_logger, _name, Schedule.Text);
        }
    }

    /// <summary>A UTC time as Go's <c>time.Time.String()</c> writes it, as Dapr sends <c>readTimeUTC</c>: <c>2025-01-02 03:04:05.5 +0000 UTC</c>.</summary>
    internal static string GoTime(DateTimeOffset time)
    {
        var utc = time.UtcDateTime;
        var text = utc.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        var fraction = utc.Ticks % TimeSpan.TicksPerSecond;
        if (fraction != 0)
        {
            text += "." + (fraction * 100).ToString("D9", CultureInfo.InvariantCulture).TrimEnd('0');
        }
        return text + " +0000 UTC";
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    [LoggerMessage(2250, LogLevel.Warning, "Cron binding {Name}: the tick of {Tick:o} was read {LateSeconds:0.0}s late and is skipped")]
    private static partial void TickSkipped(ILogger logger, string name, DateTimeOffset tick, double lateSeconds);

    [LoggerMessage(2251, LogLevel.Warning, "Cron binding {Name}: schedule '{Schedule}' does not fire within five years")]
    private static partial void NeverFires(ILogger logger, string name, string schedule);
}
