using System.Collections.Frozen;
using System.Globalization;
using System.Runtime.CompilerServices;
using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// What a pub/sub component lets each app do with a topic, compiled once per component configuration: Dapr's
/// <c>allowedTopics</c>, <c>protectedTopics</c>, <c>publishingScopes</c> and <c>subscriptionScopes</c> (the same rule
/// for publishing and for every kind of subscription), SharedRuntime's bound on topic names, and
/// <c>maxTopicsPerApp</c> (default 100, at most 10,000): how many distinct topics one app may publish to or subscribe
/// to on one broker, since every topic can cost the broker a stream or a subject of its own.
/// </summary>
internal sealed class TopicRules
{
    public const int MaxTopicLength = 256;
    public const int DefaultMaxTopicsPerApp = 100;
    public const int MaxTopicsPerAppCeiling = 10_000;

    private static readonly ConditionalWeakTable<ComponentConfig, TopicRules> Compiled = [];
    private static readonly ConditionalWeakTable<IPubSubBroker, TopicLedger> Ledgers = [];

    private readonly FrozenSet<string> _allowed;
    private readonly FrozenSet<string> _protected;
    private readonly FrozenDictionary<string, FrozenSet<string>> _publishing;
    private readonly FrozenDictionary<string, FrozenSet<string>> _subscribing;

    private TopicRules(ComponentConfig config)
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

    public static TopicRules For(ComponentConfig config) => Compiled.GetValue(config, static c => new TopicRules(c));

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

    /// <summary>Why <paramref name="topic"/> cannot be a topic name, as the error to answer; null when it can.</summary>
    public static DaprApiException? InvalidName(string topic)
    {
        if (topic.Length > MaxTopicLength)
        {
            return new DaprApiException(400, "ERR_TENANT_TOPIC_NAME_TOO_LONG", $"topic names are at most {MaxTopicLength} characters; this one has {topic.Length}");
        }
        if (topic.Contains("||", StringComparison.Ordinal))
        {
            // State keys are stored as prefix||key: a topic that is a stream key could otherwise take a state entry's key.
            return new DaprApiException(400, "ERR_MALFORMED_REQUEST", "topic names may not contain '||'");
        }
        if (topic.Any(char.IsControl))
        {
            return new DaprApiException(400, "ERR_MALFORMED_REQUEST", "topic names may not contain control characters");
        }
        return null;
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
