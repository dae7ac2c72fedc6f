namespace SharedRuntime.Configuration;

public enum ApiProtocol { Http, Grpc }

/// <summary>
/// One entry of a Configuration's <c>api.allowed</c> or <c>api.denied</c> (Dapr's APIAccessRule): an API by name
/// (<c>state</c>, <c>publish</c>, ...), version (<c>v1.0</c> or <c>v1</c> over HTTP, <c>v1</c> or <c>v1alpha1</c> over
/// gRPC) and protocol.
/// </summary>
public sealed record ApiAccessRule(string Name, string Version, ApiProtocol Protocol);

/// <summary>A Configuration's <c>spec.api</c>: the APIs an app may call, and those it may not.</summary>
public sealed record ApiAccessConfig(IReadOnlyList<ApiAccessRule> Allowed, IReadOnlyList<ApiAccessRule> Denied);
