using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

/// <summary>Durations are read by one reader everywhere: resources, Resiliency policies and component metadata.</summary>
public sealed class DurationsTests
{
    [Theory]
    [InlineData("5s", 5_000)]
    [InlineData("100ms", 100)]
    [InlineData("1m30s", 90_000)]
    [InlineData("1h", 3_600_000)]
    [InlineData("0", 0)]
    [InlineData(" 2s ", 2_000)]
    public void Go_style_durations_are_read_the_same_by_resources_and_component_metadata(string text, double milliseconds)
    {
        Assert.True(Durations.TryParse(text, out var resource));
        Assert.True(Durations.TryParseOrSeconds(text, out var metadata));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), resource);
        Assert.Equal(resource, metadata);
    }

    [Theory]
    [InlineData("30", 30_000)]
    [InlineData("0.5", 500)]
    public void Component_metadata_may_give_a_plain_number_of_seconds(string text, double milliseconds)
    {
        Assert.True(Durations.TryParseOrSeconds(text, out var value));
        Assert.Equal(TimeSpan.FromMilliseconds(milliseconds), value);
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("-5s")]
    [InlineData("NaN")]
    [InlineData("Infinity")]
    [InlineData("1e300")]
    [InlineData("1e300s")]
    [InlineData("5 parsecs")]
    [InlineData("")]
    public void Negative_unreadable_or_endless_metadata_is_not_a_duration(string text)
    {
        Assert.False(Durations.TryParseOrSeconds(text, out _));
    }
}
