namespace SharedRuntime.Configuration;

/// <summary>
/// Counts declarative subscriptions per app, refusing one that would give an app more than
/// <see cref="SubscriptionLimits.MaxPerApp"/>. A subscription without scopes counts for every app.
/// </summary>
internal sealed class SubscriptionCounter
{
    private readonly Dictionary<string, int> _scoped = new(StringComparer.Ordinal);
    private (string App, int Count) _busiest = ("every app", 0);
    private int _everyApp;

    public void Add(SubscriptionConfig subscription, RawResource raw)
    {
        var apps = subscription.Scopes.Distinct(StringComparer.Ordinal).ToList();
        var (app, count) = apps.Count == 0 ? _busiest : apps.Select(a => (a, _scoped.GetValueOrDefault(a))).MaxBy(a => a.Item2);
        if (_everyApp + count >= SubscriptionLimits.MaxPerApp)
        {
            throw raw.Error(null, $"{app} already has {SubscriptionLimits.MaxPerApp} subscriptions, the most one app may have");
        }
        if (apps.Count == 0)
        {
            _everyApp++;
            return;
        }
        foreach (var scoped in apps)
        {
            var now = _scoped[scoped] = _scoped.GetValueOrDefault(scoped) + 1;
            if (now > _busiest.Count)
            {
                _busiest = (scoped, now);
            }
        }
    }
}
