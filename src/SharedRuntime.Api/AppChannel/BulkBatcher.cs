using SharedRuntime.Components;
using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>What the app answered for one entry of a bulk delivery.</summary>
/// <param name="DeadLetter">Whether a failed entry may go to the dead-letter topic (not when the app was never called).</param>
internal readonly record struct BulkVerdict(DeliveryOutcome Outcome, string? Problem = null, bool DeadLetter = true);

/// <summary>One event waiting in a batch: the message, what is sent for it, and its verdict once the app answered.</summary>
internal sealed class BulkEntry(ReceivedMessage message, EventDelivery.Content content)
{
    public ReceivedMessage Message { get; } = message;

    public EventDelivery.Content Content { get; } = content;

    /// <summary>What the entry costs in a batch: its event and its metadata.</summary>
    public long Bytes { get; } = content.Body.Length + message.Metadata.Sum(static m => (long)m.Key.Length + m.Value.Length);

    public TaskCompletionSource<BulkVerdict> Verdict { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// Collects the events of one bulk subscription into batches, one open batch per route path (Dapr sends a path's
/// events together): a batch is sent when it holds <c>maxMessagesCount</c> events, when the next event would take it
/// past <see cref="MaxBytes"/>, or <c>maxAwaitDurationMs</c> after its first event arrived. Each event's handler call
/// waits for its own entry's verdict, so the broker's in-flight bound also bounds what waits here.
/// </summary>
internal sealed class BulkBatcher(BulkSubscribeConfig config, TimeProvider time,
    Func<string, IReadOnlyList<BulkEntry>, CancellationToken, Task<IReadOnlyList<BulkVerdict>>> send)
{
    /// <summary>Most bytes of events in one batch; an event larger than this goes alone.</summary>
    public const long MaxBytes = 4 * 1024 * 1024;

    private readonly Dictionary<string, Batch> _open = new(StringComparer.Ordinal);

    private sealed class Batch(string path)
    {
        public string Path { get; } = path;
        public List<BulkEntry> Entries { get; } = [];
        public long Bytes { get; set; }
        public CancellationTokenSource Sent { get; } = new();
    }

    public BulkSubscribeConfig Config => config;

    /// <summary>Adds <paramref name="entry"/> to the open batch of <paramref name="path"/> and waits for the app's verdict on it.</summary>
    public Task<BulkVerdict> JoinAsync(string path, BulkEntry entry, CancellationToken cancellationToken)
    {
        Batch? previous = null;
        Batch? full = null;
        Batch? started = null;
        lock (_open)
        {
            if (_open.TryGetValue(path, out var batch) && batch.Bytes + entry.Bytes > MaxBytes)
            {
                _open.Remove(path);
                previous = batch;
                batch = null;
            }
            if (batch is null)
            {
                batch = new Batch(path);
                _open[path] = batch;
                started = batch;
            }
            batch.Entries.Add(entry);
            batch.Bytes += entry.Bytes;
            if (batch.Entries.Count >= config.MaxMessagesCount || batch.Bytes >= MaxBytes)
            {
                _open.Remove(path);
                full = batch;
                started = null;
            }
        }
        if (previous is not null)
        {
            Send(previous, cancellationToken);
        }
        if (full is not null)
        {
            Send(full, cancellationToken);
        }
        else if (started is not null)
        {
            _ = SendWhenDueAsync(started, cancellationToken);
        }
        return entry.Verdict.Task.WaitAsync(cancellationToken);
    }

    private async Task SendWhenDueAsync(Batch batch, CancellationToken cancellationToken)
    {
        using var due = CancellationTokenSource.CreateLinkedTokenSource(batch.Sent.Token, cancellationToken);
        try
        {
            await Task.Delay(config.MaxAwaitDuration, time, due.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // sent when full, or the subscription stops (its waiting events go back to the broker)
        }
        lock (_open)
        {
            if (!_open.TryGetValue(batch.Path, out var open) || !ReferenceEquals(open, batch))
            {
                return;
            }
            _open.Remove(batch.Path);
        }
        Send(batch, cancellationToken);
    }

    private void Send(Batch batch, CancellationToken cancellationToken)
    {
        batch.Sent.Cancel();
        _ = SendAsync(batch, cancellationToken);
    }

    private async Task SendAsync(Batch batch, CancellationToken cancellationToken)
    {
        try
        {
            var verdicts = await send(batch.Path, batch.Entries, cancellationToken).ConfigureAwait(false);
            for (var i = 0; i < batch.Entries.Count; i++)
            {
                batch.Entries[i].Verdict.TrySetResult(verdicts[i]);
            }
        }
        catch (Exception ex)
        {
            foreach (var entry in batch.Entries)
            {
                entry.Verdict.TrySetResult(new BulkVerdict(DeliveryOutcome.Retry, ex.Message));
            }
        }
    }
}
