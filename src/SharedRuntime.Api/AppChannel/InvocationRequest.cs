using Microsoft.Extensions.Primitives;

namespace SharedRuntime.AppChannel;

/// <summary>One invocation as the runtime forwards it, whichever API it came in on.</summary>
internal sealed record InvocationRequest
{
    public required string TargetAppId { get; init; }

    /// <summary>The method path below the app's endpoint, as the caller gave it (see <see cref="MethodPath"/>).</summary>
    public required string Method { get; init; }

    /// <summary>Whether <see cref="Method"/> is still percent-encoded (gRPC) or was decoded by the HTTP server.</summary>
    public MethodPathForm MethodForm { get; init; } = MethodPathForm.Encoded;

    public required string Verb { get; init; }

    /// <summary>Query string with its leading '?', or empty.</summary>
    public string Query { get; init; } = "";

    /// <summary>Headers to pass on; the runtime drops hop-by-hop and dapr-* headers itself.</summary>
    public IEnumerable<KeyValuePair<string, StringValues>> Headers { get; init; } = [];

    /// <summary>A body held in memory (may be sent again on retry).</summary>
    public ReadOnlyMemory<byte>? Body { get; init; }

    /// <summary>A body read while it is sent: never buffered, so such a call is not retried.</summary>
    public Stream? BodyStream { get; init; }

    public string? ContentType { get; init; }

    public string? ClientAddress { get; init; }

    public string? Host { get; init; }

    public string Scheme { get; init; } = "http";

    /// <summary>
    /// A gRPC call proxied as it is (a call to the runtime's gRPC port with <c>dapr-app-id</c>): sent to the app over
    /// HTTP/2 whatever its protocol speaks on top, its body streamed and flushed message by message.
    /// </summary>
    public bool Proxied { get; init; }
}
