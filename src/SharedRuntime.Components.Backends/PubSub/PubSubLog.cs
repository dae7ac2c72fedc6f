using Microsoft.Extensions.Logging;

namespace SharedRuntime.Components.PubSub;

internal static partial class PubSubLog
{
    [LoggerMessage(3030, LogLevel.Warning, "Tenant {AppId}: an event on {Topic} was delivered {Attempts} times, its bound; acknowledged without delivering it again")]
    public static partial void AttemptsExhausted(ILogger logger, string appId, string topic, int attempts);

    [LoggerMessage(3031, LogLevel.Warning, "Broker topic {Topic}: the server refused an event as published (the publisher's error): {Problem}")]
    public static partial void Rejected(ILogger logger, string topic, string problem);

    [LoggerMessage(3032, LogLevel.Warning, "JetStream stream {Stream} holds {Count} subjects, its bound (maxSubjects); topic {Topic} is refused")]
    public static partial void SubjectsFull(ILogger logger, string stream, int count, string topic);
}
