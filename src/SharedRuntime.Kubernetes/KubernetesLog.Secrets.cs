using Microsoft.Extensions.Logging;

namespace SharedRuntime.Kubernetes;

internal static partial class KubernetesLog
{
    [LoggerMessage(4101, LogLevel.Warning, "Resources name more than {MaxSecrets} Secrets; {Secret} and the ones after it are not read")]
    public static partial void TooManySecrets(ILogger logger, int maxSecrets, string secret);

    [LoggerMessage(4102, LogLevel.Warning, "Reading Secret {Secret} failed; its last reading (if any) stays: {Problem}")]
    public static partial void SecretReadFailed(ILogger logger, string secret, string problem);
}
