namespace SharedRuntime.Http;

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
