using System.Collections.Frozen;
using System.Globalization;
using System.Runtime.CompilerServices;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.Routing;

/// <summary>
/// What a pub/sub component lets each app do with a topic, compiled once per component configuration: Dapr's
/// <c>allowedTopics</c>, <c>protectedTopics</c>, <c>publishingScopes</c> and <c>subscriptionScopes</c> (the same rule
/// for publishing and for every kind of subscription), and
/// <c>maxTopicsPerApp</c> (default 100, at most 10,000): how many distinct topics one app may publish to or subscribe
/// to on one broker, since every topic can cost the broker a stream or a subject of its own. Compiled with the
/// component's entry, and reached by each tenant through its <see cref="ComponentRoute"/>.
/// </summary>
internal sealed class TopicRules
{
    public const int DefaultMaxTopicsPerApp = 100;
    public const int MaxTopicsPerAppCeiling = 10_000;

    private static readonly ConditionalWeakTable<IPubSubBroker, TopicLedger> Ledgers = [];

    private readonly FrozenSet<string> _allowed;
    private readonly FrozenSet<string> _protected;
    private readonly FrozenDictionary<string, FrozenSet<string>> _publishing;
    private readonly FrozenDictionary<string, FrozenSet<string>> _subscribing;

    public TopicRules(ComponentConfig config)
    {
        string? Get(string name) => config.Metadata.FirstOrDefault(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))?.Value;
        _allowed = List(Get("allowedTopics")).ToFrozenSet(StringComparer.Ordinal);
        _protected = List(Get("protectedTopics")).ToFrozenSet(StringComparer.Ordinal);
        _publishing = Scopes(Get("publishingScopes"));
        _subscribing = Scopes(Get("subscriptionScopes"));
        MaxTopicsPerApp = int.TryParse(Get("maxTopicsPerApp"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max is >= 1 and <= MaxTopicsPerAppCeiling
            ? max
            : DefaultMaxTopicsPerApp;
    }

    public int MaxTopicsPerApp { get; }

    public bool MayPublish(string appId, string topic) => Allowed(topic, _publishing.GetValueOrDefault(appId));

    public bool MaySubscribe(string appId, string topic) => Allowed(topic, _subscribing.GetValueOrDefault(appId));

    /// <summary>
    /// Dapr's rule: a topic outside <c>allowedTopics</c> needs the app's scope to name it; a protected topic always
    /// does; an app with a scope may use only the topics its scope names.
    /// </summary>
    private bool Allowed(string topic, FrozenSet<string>? scoped)
    {
        if (scoped is not null)
        {
            return scoped.Contains(topic);
        }
        return (_allowed.Count == 0 || _allowed.Contains(topic)) && !_protected.Contains(topic);
    }

    /// <summary>
    /// Records that <paramref name="appId"/> uses <paramref name="topic"/> on <paramref name="broker"/>; false when that
    /// would be more than <see cref="MaxTopicsPerApp"/> distinct topics. A topic once used stays counted while the
    /// broker lives (what it cost the broker stays too).
    /// </summary>
    public bool TryUse(IPubSubBroker broker, string appId, string topic) =>
        Ledgers.GetValue(broker, static _ => new TopicLedger()).TryUse(appId, topic, MaxTopicsPerApp);

    private static string[] List(string? text) => (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary><c>app1=topic1,topic2;app2=</c>: an app named with nothing after <c>=</c> may use no topic.</summary>
    private static FrozenDictionary<string, FrozenSet<string>> Scopes(string? text)
    {
        var scopes = new Dictionary<string, FrozenSet<string>>(StringComparer.Ordinal);
        foreach (var scope in (text ?? "").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = scope.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length == 2)
            {
                scopes[parts[0]] = List(parts[1]).ToFrozenSet(StringComparer.Ordinal);
            }
        }
        return scopes.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private sealed class TopicLedger
    {
        private readonly Dictionary<string, HashSet<string>> _topics = new(StringComparer.Ordinal);

        public bool TryUse(string appId, string topic, int max)
        {
            lock (_topics)
            {
                if (!_topics.TryGetValue(appId, out var used))
                {
                    _topics[appId] = used = new HashSet<string>(StringComparer.Ordinal);
                }
                return used.Contains(topic) || (used.Count < max && used.Add(topic));
            }
        }
    }
}
