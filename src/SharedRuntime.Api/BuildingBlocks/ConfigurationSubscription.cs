using System.Threading.Channels;
using SharedRuntime.Components;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// One open configuration subscription of one app: the store's changes wait here, coalesced by key (a later change of a
/// key replaces the earlier one not yet sent), until its reader (a gRPC stream, or the runtime posting to the app) takes
/// them. At most <see cref="MaxPending"/> keys wait; changes of further keys are dropped and counted in
/// <see cref="Dropped"/>, so a reader that does not read costs a bounded amount of memory. Ends when the app
/// unsubscribes, its stream goes, the store is replaced or the tenant loses it.
/// </summary>
internal sealed class ConfigurationSubscription : IConfigurationWatcher, IAsyncDisposable
{
    private readonly Dictionary<string, ConfigurationItem> _pending = new(StringComparer.Ordinal);
    private readonly Channel<bool> _signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private readonly CancellationTokenSource _closed = new();
    private readonly Func<ConfigurationSubscription, ValueTask> _onDisposed;
    private IAsyncDisposable? _storeHandle;
    private int _disposed;

    public ConfigurationSubscription(string appId, string storeName, IConfigurationStore store, IReadOnlyList<string> keys, Func<ConfigurationSubscription, ValueTask> onDisposed)
    {
        AppId = appId;
        StoreName = storeName;
        Store = store;
        Keys = keys;
        MaxPending = store.Limits.MaxKeysPerRequest;
        _onDisposed = onDisposed;
    }

    public string Id { get; } = Guid.NewGuid().ToString();

    public string AppId { get; }

    public string StoreName { get; }

    public IConfigurationStore Store { get; }

    public IReadOnlyList<string> Keys { get; }

    public int MaxPending { get; }

    public long Dropped { get; private set; }

    /// <summary>Cancelled when the subscription ends.</summary>
    public CancellationToken Ended => _closed.Token;

    internal async Task AttachAsync(CancellationToken cancellationToken) =>
        _storeHandle = await Store.SubscribeAsync(AppId, Keys, this, cancellationToken).ConfigureAwait(false);

    public void Changed(IReadOnlyDictionary<string, ConfigurationItem> items)
    {
        lock (_pending)
        {
            foreach (var (key, item) in items)
            {
                if (_pending.Count >= MaxPending && !_pending.ContainsKey(key))
                {
                    Dropped++;
                    continue;
                }
                _pending[key] = item;
            }
        }
        _signal.Writer.TryWrite(true);
    }

    public void Closed() => End();

    /// <summary>Ends the subscription: its reader gets null from <see cref="NextAsync"/>.</summary>
    public void End()
    {
        _closed.Cancel();
    }

    /// <summary>The changes waiting, once there are some; null once the subscription has ended.</summary>
    public async ValueTask<IReadOnlyDictionary<string, ConfigurationItem>?> NextAsync(CancellationToken cancellationToken)
    {
        using var both = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        while (!_closed.IsCancellationRequested)
        {
            lock (_pending)
            {
                if (_pending.Count > 0)
                {
                    var taken = new Dictionary<string, ConfigurationItem>(_pending, StringComparer.Ordinal);
                    _pending.Clear();
                    return taken;
                }
            }
            try
            {
                await _signal.Reader.ReadAsync(both.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_closed.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                return null;
            }
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        End();
        if (_storeHandle is not null)
        {
            await _storeHandle.DisposeAsync().ConfigureAwait(false);
        }
        await _onDisposed(this).ConfigureAwait(false);
    }
}
