namespace SharedRuntime.Grpc;

/// <summary>Open configuration subscriptions, by app-id and id, so that only their own app can end them.</summary>
internal static class ConfigurationSubscriptions
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string AppId, string Id), CancellationTokenSource> Open = new();

    public static CancellationTokenSource Register(string appId, string id, CancellationToken callEnded)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(callEnded);
        Open[(appId, id)] = source;
        source.Token.Register(() => Open.TryRemove((appId, id), out _));
        return source;
    }

    public static bool Cancel(string appId, string id)
    {
        if (Open.TryRemove((appId, id), out var source))
        {
            source.Cancel();
            return true;
        }
        return false;
    }
}
