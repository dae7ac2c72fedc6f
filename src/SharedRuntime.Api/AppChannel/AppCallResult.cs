using SharedRuntime.Components;

namespace SharedRuntime.AppChannel;

/// <summary>
/// What one call into an app produced. <see cref="Failed"/> calls count against retries and circuit breakers; the
/// response of a call that is retried is disposed by the pipeline.
/// </summary>
internal sealed class AppCallResult : IDisposable
{
    public HttpResponseMessage? Response { get; init; }

    public int StatusCode { get; init; }

    public bool Failed { get; init; }

    /// <summary>For deliveries: what the app answered.</summary>
    public DeliveryOutcome Delivery { get; init; }

    /// <summary>For bulk deliveries: the app's status for each entry it answered for, by entry id.</summary>
    public IReadOnlyDictionary<string, DeliveryOutcome>? Statuses { get; init; }

    /// <summary>Why it failed, for logs.</summary>
    public string? Problem { get; init; }

    public void Dispose() => Response?.Dispose();
}
