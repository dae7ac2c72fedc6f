namespace SharedRuntime.Configuration;

/// <summary>
/// How the runtime speaks to a tenant's app (<c>spec.appProtocol</c>, named after Dapr's app-protocol).
/// </summary>
public enum AppProtocol
{
    /// <summary><c>http</c> (the default): HTTP/1.1, to an http or https appEndpoint.</summary>
    Http,

    /// <summary><c>h2c</c>: HTTP/2 without TLS (prior knowledge), to an http appEndpoint.</summary>
    H2c,

    /// <summary>
    /// <c>grpc</c>: the app is a gRPC server (h2c) with Dapr's AppCallback service, which the runtime calls for
    /// invocations, events and subscriptions; proxied gRPC calls reach it as they are.
    /// </summary>
    Grpc,
}
