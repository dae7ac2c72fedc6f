namespace SharedRuntime.Http;

/// <summary>Which listener an endpoint belongs to; a request on another port does not reach it.</summary>
internal enum Listener { DaprHttp, DaprGrpc, Metrics }

/// <summary>Endpoint metadata: the listener, the API name used in metrics, and whether a tenant token is needed.</summary>
internal sealed record ApiEndpointMetadata(Listener Listener, string Api, bool Anonymous = false);

/// <summary>The ports each listener is bound to, known at start-up.</summary>
internal sealed class ListenerPorts
{
    public required int DaprHttp { get; init; }
    public required int DaprGrpc { get; init; }
    public required int Metrics { get; init; }

    public Listener? ListenerOf(int localPort) =>
        localPort == DaprHttp ? Listener.DaprHttp :
        localPort == DaprGrpc ? Listener.DaprGrpc :
        localPort == Metrics ? Listener.Metrics : null;
}
