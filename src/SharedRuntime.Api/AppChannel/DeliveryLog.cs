using Microsoft.Extensions.Logging;

namespace SharedRuntime.AppChannel;

internal static partial class DeliveryLog
{
    [LoggerMessage(2201, LogLevel.Information, "Tenant {AppId}: subscribed to {PubsubName}/{Topic} ({Source})")]
    public static partial void Subscribed(ILogger logger, string appId, string pubsubName, string topic, string source);

    [LoggerMessage(2202, LogLevel.Information, "Tenant {AppId}: unsubscribed from {PubsubName}/{Topic}")]
    public static partial void Unsubscribed(ILogger logger, string appId, string pubsubName, string topic);

    [LoggerMessage(2203, LogLevel.Warning, "Tenant {AppId}: subscription {Subscription} names pubsub {PubsubName}, which is not available to it")]
    public static partial void NoBroker(ILogger logger, string appId, string subscription, string pubsubName);

    [LoggerMessage(2204, LogLevel.Warning, "Tenant {AppId}: may not subscribe to topic {Topic} of {PubsubName} (subscriptionScopes or allowedTopics)")]
    public static partial void TopicNotAllowed(ILogger logger, string appId, string topic, string pubsubName);

    [LoggerMessage(2205, LogLevel.Warning, "Tenant {AppId}: a second subscription to {PubsubName}/{Topic} in {Source} is ignored")]
    public static partial void Duplicate(ILogger logger, string appId, string pubsubName, string topic, string source);

    [LoggerMessage(2206, LogLevel.Error, "Tenant {AppId}: subscribing to {PubsubName}/{Topic} failed: {Problem}")]
    public static partial void SubscribeFailed(ILogger logger, string appId, string pubsubName, string topic, string problem);

    [LoggerMessage(2207, LogLevel.Warning, "Tenant {AppId}: event on {Topic} matches no route and the subscription has no default; dropped")]
    public static partial void NoRoute(ILogger logger, string appId, string topic);

    [LoggerMessage(2208, LogLevel.Information, "Tenant {AppId}: event on {Topic} dropped by the app (status {Status})")]
    public static partial void Dropped(ILogger logger, string appId, string topic, int status);

    [LoggerMessage(2209, LogLevel.Warning, "Tenant {AppId}: delivery of an event on {Topic} failed (attempt {Attempt}): {Problem}")]
    public static partial void Failed(ILogger logger, string appId, string topic, int attempt, string problem);

    [LoggerMessage(2210, LogLevel.Warning, "Tenant {AppId}: event on {Topic} sent to dead-letter topic {DeadLetterTopic}")]
    public static partial void DeadLettered(ILogger logger, string appId, string topic, string deadLetterTopic);

    [LoggerMessage(2211, LogLevel.Error, "Tenant {AppId}: event on {Topic} could not go to dead-letter topic {DeadLetterTopic}, left in the broker: {Problem}")]
    public static partial void DeadLetterFailed(ILogger logger, string appId, string topic, string deadLetterTopic, string problem);

    [LoggerMessage(2212, LogLevel.Error, "Updating subscriptions failed")]
    public static partial void ReconcileFailed(ILogger logger, Exception exception);

    [LoggerMessage(2213, LogLevel.Warning, "Tenant {AppId}: asking the app for its subscriptions failed, trying again for {Seconds}s: {Problem}")]
    public static partial void DiscoveryFailed(ILogger logger, string appId, int seconds, string problem);

    [LoggerMessage(2216, LogLevel.Warning, "Tenant {AppId}: the app did not answer GET /dapr/subscribe for {Seconds}s; it is asked again at its next request to the runtime: {Problem}")]
    public static partial void DiscoveryGaveUp(ILogger logger, string appId, int seconds, string problem);

    [LoggerMessage(2217, LogLevel.Error, "Tenant {AppId}: asking the app for its subscriptions stopped unexpectedly")]
    public static partial void DiscoveryStopped(ILogger logger, string appId, Exception exception);

    [LoggerMessage(2214, LogLevel.Information, "Tenant {AppId}: the app subscribes to {Count} topics through /dapr/subscribe")]
    public static partial void Discovered(ILogger logger, string appId, int count);

    [LoggerMessage(2232, LogLevel.Information, "Tenant {AppId}: an event on {Topic} of {PubsubName} expired (ttlInSeconds) before it was delivered; dropped")]
    public static partial void Expired(ILogger logger, string appId, string topic, string pubsubName);

    [LoggerMessage(2230, LogLevel.Warning, "Tenant {AppId}: an event on {Topic} of {PubsubName} was dropped: {Reason}")]
    public static partial void Ended(ILogger logger, string appId, string topic, string pubsubName, string reason);

    [LoggerMessage(2231, LogLevel.Warning, "Tenant {AppId}: subscription {Subscription} to {PubsubName}/{Topic} is refused: {Reason}")]
    public static partial void SubscriptionRefused(ILogger logger, string appId, string subscription, string pubsubName, string topic, string reason);

    [LoggerMessage(2215, LogLevel.Error, "Tenant {AppId}: the app's answer to GET /dapr/subscribe is refused; it has no programmatic subscriptions until it answers well, its declarative ones and the other tenants are unaffected: {Problem}")]
    public static partial void DiscoveryRefused(ILogger logger, string appId, string problem);
}
