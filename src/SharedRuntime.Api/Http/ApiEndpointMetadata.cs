namespace SharedRuntime.Http;

/// <summary>Endpoint metadata: the listener, the API name used in metrics, and whether a tenant token is needed.</summary>
internal sealed record ApiEndpointMetadata(Listener Listener, string Api, bool Anonymous = false);
