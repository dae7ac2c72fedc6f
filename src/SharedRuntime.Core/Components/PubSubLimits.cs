namespace SharedRuntime.Components;

/// <summary>Bounds every broker applies, whatever its backend.</summary>
internal static class PubSubLimits
{
    /// <summary>How often a message is delivered before it ends (dead-letter topic, or dropped): component metadata <c>maxDeliveryAttempts</c>.</summary>
    public const int DefaultMaxDeliveryAttempts = 10;

    /// <summary>The most <c>maxDeliveryAttempts</c> may be set to.</summary>
    public const int MaxDeliveryAttemptsCeiling = 1000;

    /// <summary>
    /// <c>maxDeliveryAttempts</c> (also Dapr JetStream's <c>maxDeliver</c>) from component metadata: a whole number from
    /// 1 to <see cref="MaxDeliveryAttemptsCeiling"/>; missing means <see cref="DefaultMaxDeliveryAttempts"/>.
    /// </summary>
    public static int MaxDeliveryAttempts(ComponentContext context)
    {
        var text = context.GetMetadata("maxDeliveryAttempts") ?? context.GetMetadata("maxDeliver");
        if (string.IsNullOrEmpty(text))
        {
            return DefaultMaxDeliveryAttempts;
        }
        return int.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) && value is >= 1 and <= MaxDeliveryAttemptsCeiling
            ? value
            : throw new ComponentException($"metadata 'maxDeliveryAttempts' must be a whole number from 1 to {MaxDeliveryAttemptsCeiling}, not '{text}'");
    }
}

/// <summary>What a broker's bound refused.</summary>
internal enum PubSubLimit
{
    /// <summary>A subscription of the topic holds as many undelivered events as it may.</summary>
    QueueFull,
    /// <summary>The broker holds as many topics as it may.</summary>
    TopicsExceeded,
}

/// <summary>
/// A broker's bound refused the message: the publisher is asked to try again later (a queue full), or to use a topic
/// that exists. Not a backend failure.
/// </summary>
internal sealed class PubSubLimitException(PubSubLimit limit, string message) : InvalidOperationException(message)
{
    public PubSubLimit Limit { get; } = limit;
}

/// <summary>
/// The broker refused a message because of the message itself (its topic names a key of another type, or it is
/// larger than the server takes): the publisher's error, not a backend failure, so it never counts against a breaker.
/// </summary>
internal sealed class PubSubMessageRejectedException(string message, Exception? inner = null) : ArgumentException(message, inner);
