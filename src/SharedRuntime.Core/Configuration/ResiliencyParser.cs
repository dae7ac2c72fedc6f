namespace SharedRuntime.Configuration;

/// <summary>Parses a Resiliency resource: its timeout, retry and circuit breaker policies and the targets that use them.</summary>
internal static class ResiliencyParser
{
    public static ResiliencyConfig Parse(RawResource raw)
    {
        var root = raw.Node;
        var policies = root["spec"]["policies"];
        var timeouts = new Dictionary<string, TimeSpan>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["timeouts"].Entries())
        {
            timeouts[name] = ResourceRules.Positive(node) ?? throw node.Error("is required");
        }

        var retries = new Dictionary<string, RetryPolicyConfig>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["retries"].Entries())
        {
            var policy = (node["policy"].AsString() ?? "constant") switch
            {
                "constant" => RetryBackoff.Constant,
                "exponential" => RetryBackoff.Exponential,
                var other => throw node["policy"].Error($"'{other}' is not a retry policy; use constant or exponential"),
            };
            retries[name] = new RetryPolicyConfig(
                policy,
                node["duration"].AsDuration() ?? (policy == RetryBackoff.Constant ? TimeSpan.FromSeconds(5) : TimeSpan.FromMilliseconds(500)),
                node["maxInterval"].AsDuration() ?? TimeSpan.FromSeconds(60),
                (int?)node["maxRetries"].AsInt64(-1, int.MaxValue) ?? -1,
                Codes(node["matching"]["httpStatusCodes"], 100, 599),
                Codes(node["matching"]["gRPCStatusCodes"], 0, 16));
        }

        var breakers = new Dictionary<string, CircuitBreakerPolicyConfig>(StringComparer.Ordinal);
        foreach (var (name, node) in policies["circuitBreakers"].Entries())
        {
            TripExpression trip;
            try
            {
                trip = TripExpression.Parse(node["trip"].AsString() ?? "consecutiveFailures > 5");
            }
            catch (FormatException ex)
            {
                throw node["trip"].Error(ex.Message);
            }
            breakers[name] = new CircuitBreakerPolicyConfig(
                (int?)node["maxRequests"].AsInt64(1, 1_000_000) ?? 1,
                node["interval"].AsDuration() ?? TimeSpan.Zero,
                node["timeout"].AsDuration() ?? TimeSpan.FromSeconds(60),
                trip);
        }

        var targets = root["spec"]["targets"];
        var apps = new Dictionary<string, PolicyRefs>(StringComparer.Ordinal);
        foreach (var (appId, node) in targets["apps"].Entries())
        {
            apps[appId] = Refs(node, timeouts, retries, breakers);
        }
        var components = new Dictionary<string, ComponentPolicyRefs>(StringComparer.Ordinal);
        foreach (var (name, node) in targets["components"].Entries())
        {
            components[name] = new ComponentPolicyRefs(
                node["outbound"].IsMissing ? null : Refs(node["outbound"], timeouts, retries, breakers),
                node["inbound"].IsMissing ? null : Refs(node["inbound"], timeouts, retries, breakers));
        }
        return new ResiliencyConfig
        {
            Name = raw.Name,
            Timeouts = timeouts,
            Retries = retries,
            CircuitBreakers = breakers,
            Apps = apps,
            Components = components,
            Scopes = root["scopes"].AsStringList(),
            Namespace = raw.Namespace,
            Source = ResourceRules.SourceOf(raw),
        };
    }

    private static StatusCodeSet? Codes(ResourceNode node, int min, int max)
    {
        var text = node.AsString();
        if (text is null)
        {
            return null;
        }
        return StatusCodeSet.TryParse(text, min, max, out var set)
            ? set
            : throw node.Error($"'{text}' is not a list of codes or ranges between {min} and {max}, like \"429,500-599\"");
    }

    private static PolicyRefs Refs(
        ResourceNode node,
        Dictionary<string, TimeSpan> timeouts,
        Dictionary<string, RetryPolicyConfig> retries,
        Dictionary<string, CircuitBreakerPolicyConfig> breakers)
    {
        var timeout = node["timeout"].AsString();
        var retry = node["retry"].AsString();
        var breaker = node["circuitBreaker"].AsString();
        if (timeout is not null && !timeouts.ContainsKey(timeout))
        {
            throw node["timeout"].Error($"no timeout policy named '{timeout}' in spec.policies.timeouts");
        }
        if (retry is not null && !retries.ContainsKey(retry))
        {
            throw node["retry"].Error($"no retry policy named '{retry}' in spec.policies.retries");
        }
        if (breaker is not null && !breakers.ContainsKey(breaker))
        {
            throw node["circuitBreaker"].Error($"no circuit breaker named '{breaker}' in spec.policies.circuitBreakers");
        }
        return new PolicyRefs(timeout, retry, breaker);
    }
}
