namespace SharedRuntime.Components;

/// <summary>
/// One event an input binding read, for every app the binding is scoped to. <see cref="Occurrence"/> names the event
/// the same way in every runtime that reads it (a cron tick's scheduled time), so that with a shared lock store one
/// runtime of the cluster delivers it per app; null for events only this runtime sees.
/// </summary>
internal sealed record InputBindingEvent(ReadOnlyMemory<byte> Data, IReadOnlyDictionary<string, string> Metadata, string? Occurrence);

/// <summary>
/// An input binding: it reads events on its own and hands each to the runtime, which delivers it to the apps the
/// component is scoped to as Dapr does (<c>POST /&lt;route&gt;</c>).
/// </summary>
internal interface IInputBinding : IComponent
{
    /// <summary>The app path events are posted to: the component's <c>route</c> metadata, else its name.</summary>
    string Route { get; }

    /// <summary>
    /// The lock store (a component name, the <c>lockStore</c> metadata) through which runtimes agree which of them
    /// delivers an event with an <see cref="InputBindingEvent.Occurrence"/>; null when every runtime delivers it.
    /// </summary>
    string? LockStore { get; }

    /// <summary>
    /// How long the claim on one occurrence is held in the lock store: longer than runtimes can disagree about when it
    /// happens, and an occurrence is not delivered later than half of it.
    /// </summary>
    TimeSpan ClaimDuration { get; }

    /// <summary>
    /// Reads events and calls <paramref name="onEvent"/> for each, one at a time, until <paramref name="cancellationToken"/>
    /// is cancelled (then it returns). <paramref name="onEvent"/> only queues the deliveries and returns.
    /// </summary>
    Task ReadAsync(Func<InputBindingEvent, CancellationToken, ValueTask> onEvent, CancellationToken cancellationToken);
}
