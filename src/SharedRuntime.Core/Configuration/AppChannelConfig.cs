namespace SharedRuntime.Configuration;

/// <summary>
/// How the runtime calls a tenant's app (<c>spec.appChannel</c>): invocations from other apps and pub/sub deliveries
/// share these bounds, so an app that hangs or fails ties up only its own slots.
/// </summary>
public sealed record AppChannelConfig
{
    /// <summary>Calls into the app at once (invocations and deliveries together).</summary>
    public int MaxConcurrency { get; init; } = 32;

    /// <summary>Invocations waiting for a slot; beyond that they are refused at once. Deliveries wait in the broker instead.</summary>
    public int MaxQueue { get; init; } = 64;

    /// <summary>Time allowed for one call into the app when no Resiliency timeout applies.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Ask the app for its subscriptions with <c>GET {appEndpoint}/dapr/subscribe</c> (on unless the Tenant sets it to
    /// false, as in Dapr). The app is asked when it shows it is up, never on a timer unless
    /// <see cref="SubscriptionRefreshInterval"/> is set.
    /// </summary>
    public bool DiscoverSubscriptions { get; init; } = true;

    /// <summary>
    /// Ask the app again this often, whether or not it calls the runtime; null (the default) never does. Each ask is a
    /// request to the app: on Knative it wakes a function scaled to zero and keeps it up when shorter than the
    /// scale-down delay.
    /// </summary>
    public TimeSpan? SubscriptionRefreshInterval { get; init; }

    /// <summary>Sent to the app as <c>dapr-api-token</c> so that it can tell calls from the runtime apart (Dapr's APP_API_TOKEN). Never logged.</summary>
    public string? AppApiToken { get; init; }

    /// <summary>Consecutive failed calls (transport error or timeout) after which the app is not called for <see cref="BreakDuration"/>.</summary>
    public int BreakAfterFailures { get; init; } = 5;

    public TimeSpan BreakDuration { get; init; } = TimeSpan.FromSeconds(5);

    public static AppChannelConfig Default { get; } = new();
}
