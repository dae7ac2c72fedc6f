using SharedRuntime.Tenancy;

namespace SharedRuntime.Tests.Tenancy;

/// <summary>
/// The table a reload changes by a few entries: it reads as if every change had been applied to a copy, an older
/// version never sees a later change, and enough changes fold back into one frozen table.
/// </summary>
public sealed class LayeredTableTests
{
    private static LayeredTable<string, string> Of(int count) =>
        LayeredTable<string, string>.From(Enumerable.Range(0, count).Select(i => KeyValuePair.Create($"k{i}", $"v{i}")), StringComparer.Ordinal);

    private static KeyValuePair<string, string?> Set(string key, string? value) => KeyValuePair.Create(key, value);

    [Fact]
    public void ChangesReadAsIfAppliedToACopyAndTheOlderVersionIsUntouched()
    {
        var before = Of(1000);
        var after = before.With([Set("k1", "changed"), Set("k2", null), Set("new", "added")]);

        Assert.Equal("changed", after["k1"]);
        Assert.False(after.ContainsKey("k2"));
        Assert.Equal("added", after["new"]);
        Assert.Equal("v3", after["k3"]);
        Assert.Equal(1000, after.Count);
        Assert.Equal(after.Count, after.Count());
        Assert.Equal(after.Keys.Order(StringComparer.Ordinal), after.Select(e => e.Key).Order(StringComparer.Ordinal));
        Assert.DoesNotContain(after, e => e.Key == "k2");

        Assert.Equal("v1", before["k1"]);
        Assert.Equal("v2", before["k2"]);
        Assert.False(before.ContainsKey("new"));
        Assert.Equal(1000, before.Count);
    }

    [Fact]
    public void AKeyRemovedAndAddedAgainInOneChangeIsThere()
    {
        var table = Of(10).With([Set("k1", null), Set("k1", "back")]);
        Assert.Equal("back", table["k1"]);
        Assert.Equal(10, table.Count);
    }

    [Fact]
    public void RemovingAKeyThatIsNotThereChangesNothing()
    {
        var table = Of(10).With([Set("missing", null)]);
        Assert.Equal(10, table.Count);
        Assert.False(table.ContainsKey("missing"));
    }

    [Fact]
    public void ManyChangesFoldIntoOneFrozenTable()
    {
        var table = Of(1000);
        for (var i = 0; i < 200; i++)
        {
            table = table.With([Set($"added{i}", "x")]);
            Assert.True(table.Layered <= Math.Max(64, table.Count / 8) + 1, $"layer of {table.Layered} after {i + 1} changes");
        }
        Assert.Equal(1200, table.Count);
        Assert.True(table.Layered < 200, "the changes were folded into the base at least once");
        Assert.All(Enumerable.Range(0, 200), i => Assert.Equal("x", table[$"added{i}"]));
        Assert.All(Enumerable.Range(0, 1000), i => Assert.Equal($"v{i}", table[$"k{i}"]));
    }

    [Fact]
    public void AValueSetBackToTheBasesObjectNeedsNoLayer()
    {
        var table = Of(10);
        var v1 = table["k1"];
        var changed = table.With([Set("k1", "other")]).With([Set("k1", v1)]);
        Assert.Equal(0, changed.Layered);
        Assert.Same(v1, changed["k1"]);
    }
}
