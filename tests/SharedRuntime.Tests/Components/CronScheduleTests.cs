using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Components;
using SharedRuntime.Components.Bindings;

namespace SharedRuntime.Tests.Components;

/// <summary>The schedule formats of Dapr's cron binding, and when a schedule fires next.</summary>
public class CronScheduleTests
{
    private static readonly DateTimeOffset Start = new(2025, 3, 14, 10, 20, 30, 250, TimeSpan.Zero);

    private static DateTimeOffset? Next(string schedule, DateTimeOffset? after = null) => CronSchedule.Parse(schedule).Next(after ?? Start);

    [Theory]
    [InlineData("30 * * * * *", "2025-03-14T10:21:30Z")]
    [InlineData("0 */15 * * * *", "2025-03-14T10:30:00Z")]
    [InlineData("*/15 * * * *", "2025-03-14T10:30:00Z")]
    [InlineData("0 30 3-6,20-23 * * *", "2025-03-14T20:30:00Z")]
    [InlineData("* * * * * *", "2025-03-14T10:20:31Z")]
    [InlineData("5/20 * * * * *", "2025-03-14T10:20:45Z")]
    [InlineData("0 0 12 * JAN-MAR MON", "2025-03-17T12:00:00Z")]
    [InlineData("0 0 0 * * 7", "2025-03-16T00:00:00Z")]
    [InlineData("0 0 0 1,15 * MON", "2025-03-15T00:00:00Z")]
    [InlineData("0 0 0 ? * MON", "2025-03-17T00:00:00Z")]
    [InlineData("@hourly", "2025-03-14T11:00:00Z")]
    [InlineData("@daily", "2025-03-15T00:00:00Z")]
    [InlineData("@midnight", "2025-03-15T00:00:00Z")]
    [InlineData("@weekly", "2025-03-16T00:00:00Z")]
    [InlineData("@monthly", "2025-04-01T00:00:00Z")]
    [InlineData("@yearly", "2026-01-01T00:00:00Z")]
    [InlineData("@every 15s", "2025-03-14T10:20:45Z")]
    [InlineData("@every 1m30s", "2025-03-14T10:21:00Z")]
    [InlineData("@every 500ms", "2025-03-14T10:20:31Z")]
    public void FiresWhereDaprsFormatsSay(string schedule, string expected) =>
        Assert.Equal(DateTimeOffset.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), Next(schedule));

    [Fact]
    public void EveryIsAlignedToTheEpochSoThatEveryRuntimeHasTheSameTicks()
    {
        var schedule = CronSchedule.Parse("@every 15s");
        var a = schedule.Next(Start);
        var b = schedule.Next(Start.AddSeconds(3));
        Assert.Equal(a, b);
        Assert.Equal(0, a!.Value.ToUnixTimeSeconds() % 15);
        Assert.Equal(a.Value.AddSeconds(15), schedule.Next(a.Value));
    }

    [Fact]
    public void ATimeZonePrefixReadsTheFieldsInThatZone()
    {
        TimeZoneInfo zone;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById("America/New_York");
        }
        catch (TimeZoneNotFoundException)
        {
            return; // no tz database on this machine
        }
        var next = Next("CRON_TZ=America/New_York 0 30 04 * * *")!.Value;
        Assert.Equal(new TimeSpan(4, 30, 0), TimeZoneInfo.ConvertTime(next, zone).TimeOfDay);
        Assert.Equal(Next("CRON_TZ=America/New_York 0 30 04 * * *"), Next("TZ=America/New_York 0 30 04 * * *"));
    }

    [Fact]
    public void AScheduleThatNeverFiresHasNoNextTime() => Assert.Null(Next("0 0 0 30 2 *"));

    [Theory]
    [InlineData("")]
    [InlineData("* * * *")]
    [InlineData("* * * * * * *")]
    [InlineData("60 * * * * *")]
    [InlineData("* * 24 * * *")]
    [InlineData("* * * 0 * *")]
    [InlineData("* * * * 13 *")]
    [InlineData("* * * * * 8")]
    [InlineData("5-1 * * * * *")]
    [InlineData("*/0 * * * * *")]
    [InlineData("*/x * * * * *")]
    [InlineData("@fortnightly")]
    [InlineData("@every soon")]
    [InlineData("CRON_TZ=Nowhere/Atlantis 0 0 0 * * *")]
    [InlineData("CRON_TZ=UTC")]
    public void ASchedulesDaprRefusesIsRefusedWithTheReason(string schedule) =>
        Assert.Throws<FormatException>(() => CronSchedule.Parse(schedule));

    [Fact]
    public void AHugeStepDoesNotLoopForever() => Assert.Equal(Start.AddSeconds(29.75), Next("0/2147483647 * * * * *"));

    [Fact]
    public void ReadTimeIsWrittenAsGoWritesItsTimes()
    {
        Assert.Equal("2025-03-14 10:20:30.25 +0000 UTC", CronInputBinding.GoTime(Start));
        Assert.Equal("2025-03-14 10:20:30 +0000 UTC", CronInputBinding.GoTime(new DateTimeOffset(2025, 3, 14, 10, 20, 30, TimeSpan.Zero)));
    }

    [Fact]
    public async Task TheBindingFiresOnEachTickWithDaprsMetadataAndSkipsTicksReadTooLate()
    {
        var time = new FakeTimeProvider(Start);
        var binding = new CronInputBinding(Context(new() { ["schedule"] = "@every 10s", ["route"] = "/jobs/tick", ["lockStore"] = "locks" }), time, NullLogger.Instance);
        Assert.Equal("jobs/tick", binding.Route);
        Assert.Equal("locks", binding.LockStore);
        Assert.Equal(TimeSpan.FromSeconds(10), binding.ClaimDuration);

        var events = System.Threading.Channels.Channel.CreateUnbounded<InputBindingEvent>();
        using var stop = new CancellationTokenSource();
        var reading = binding.ReadAsync((e, _) => { events.Writer.TryWrite(e); return ValueTask.CompletedTask; }, stop.Token);

        await Eventually.TrueAsync(async () => { time.Advance(TimeSpan.FromSeconds(1)); await Task.Yield(); return events.Reader.Count > 0; }, TimeSpan.FromSeconds(10));
        var first = await events.Reader.ReadAsync();
        Assert.Equal(Start.AddSeconds(9.75).ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture), first.Occurrence);
        Assert.Equal("UTC", first.Metadata["timeZone"]);
        Assert.EndsWith(" +0000 UTC", first.Metadata["readTimeUTC"]);
        Assert.True(first.Data.IsEmpty);

        // The process "sleeps" past the next tick by more than half the claim: that tick is skipped, the one after fires.
        time.Advance(TimeSpan.FromSeconds(16));
        await Eventually.TrueAsync(async () => { time.Advance(TimeSpan.FromSeconds(1)); await Task.Yield(); return events.Reader.Count > 0; }, TimeSpan.FromSeconds(10));
        var next = await events.Reader.ReadAsync();
        Assert.Equal(Start.AddSeconds(29.75).ToUnixTimeMilliseconds(), long.Parse(next.Occurrence!, System.Globalization.CultureInfo.InvariantCulture));

        await stop.CancelAsync();
        await reading.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(null, "metadata 'schedule' is required")]
    [InlineData("every minute", "invalid schedule format")]
    public void ABindingWithoutAValidScheduleFailsToStart(string? schedule, string message)
    {
        var metadata = new Dictionary<string, string>();
        if (schedule is not null)
        {
            metadata["schedule"] = schedule;
        }
        var error = Assert.Throws<ComponentException>(() => new CronInputBinding(Context(metadata), TimeProvider.System, NullLogger.Instance));
        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    private static ComponentContext Context(Dictionary<string, string> metadata) => new()
    {
        Name = "tick",
        Type = "bindings.cron",
        Version = "v1",
        Metadata = metadata,
        Services = new ServiceCollection().BuildServiceProvider(),
    };
}
