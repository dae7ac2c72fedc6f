namespace SharedRuntime.Configuration;

/// <summary>Parses a Subscription resource (dapr.io/v1alpha1 with one route, v2alpha1 with rules and a default).</summary>
internal static class SubscriptionParser
{
    public static SubscriptionConfig Parse(RawResource raw)
    {
        var root = raw.Node;
        var spec = root["spec"];
        var pubsub = spec["pubsubname"].RequiredString();
        var topic = spec["topic"].RequiredString();
        SubscriptionRoutes routes;
        if (raw.ApiVersion == ResourceParser.DaprApiVersion2)
        {
            var rules = new List<RouteRule>();
            foreach (var rule in spec["routes"]["rules"].Items())
            {
                var match = rule["match"].AsString() ?? "";
                var path = rule["path"].RequiredString();
                try
                {
                    RouteMatch.Parse(match);
                }
                catch (FormatException ex)
                {
                    throw rule["match"].Error(ex.Message);
                }
                rules.Add(new RouteRule(match, path));
            }
            routes = new SubscriptionRoutes(rules, spec["routes"]["default"].AsString());
            if (rules.Count == 0 && routes.Default is null)
            {
                throw spec["routes"].Error("needs a default path or at least one rule");
            }
        }
        else
        {
            routes = new SubscriptionRoutes([], spec["route"].RequiredString());
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in spec["metadata"].Entries())
        {
            metadata[key] = value.AsString() ?? "";
        }
        var bulkNode = spec["bulkSubscribe"];
        var bulk = BulkSubscribeConfig.Of(bulkNode["enabled"].AsBool(), bulkNode["maxMessagesCount"].AsInt64(long.MinValue, long.MaxValue),
            bulkNode["maxAwaitDurationMs"].AsInt64(long.MinValue, long.MaxValue), out var bulkProblem);
        if (bulkProblem is not null)
        {
            throw bulkNode.Error(bulkProblem);
        }
        var subscription = new SubscriptionConfig
        {
            Name = raw.Name,
            PubsubName = pubsub,
            Topic = topic,
            Routes = routes,
            DeadLetterTopic = spec["deadLetterTopic"].AsString(),
            BulkSubscribe = bulk,
            Metadata = metadata,
            Scopes = root["scopes"].AsStringList(),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
        return SubscriptionLimits.Problem(subscription) is { } problem ? throw spec.Error(problem) : subscription;
    }

    /// <summary>The app-ids a Subscription document names, as far as they can be read, for saying whom a refusal costs.</summary>
    public static IReadOnlyList<string> ScopesOf(RawResource raw)
    {
        try
        {
            return raw.Node["scopes"].AsStringList();
        }
        catch (ResourceException)
        {
            return [];
        }
    }
}
