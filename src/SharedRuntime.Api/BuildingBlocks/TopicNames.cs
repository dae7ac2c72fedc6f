namespace SharedRuntime.BuildingBlocks;

/// <summary>SharedRuntime's bound on topic names, the same for publishing and for every kind of subscription.</summary>
internal static class TopicNames
{
    public const int MaxTopicLength = 256;

    /// <summary>Why <paramref name="topic"/> cannot be a topic name, as the error to answer; null when it can.</summary>
    public static DaprApiException? Invalid(string topic)
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
}
