using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Primitives;
using SharedRuntime.Admission;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Http;
using SharedRuntime.Metrics;

namespace SharedRuntime.Grpc;

/// <summary>
/// Dapr's gRPC proxying: a call to the runtime's gRPC port for a method that is not the Dapr API, carrying
/// <c>dapr-app-id</c> metadata, goes on as it is to that app (appProtocol <c>grpc</c> or <c>h2c</c>). It takes the same
/// way as any invocation: the caller's admission and body limit, the target's access control (the operation is the
/// full method name, the verb POST), a slot in the caller's line at the target, the caller's resiliency pipeline (a
/// streamed body is never sent twice; messages that had all arrived when the call began, as a unary call's mostly
/// has, go in one piece and may be) and the target's breaker. Messages stream both ways as they come, and the
/// app's trailers come back as its status. The caller's deadline (<c>grpc-timeout</c>) goes to the app and ends the
/// call here too (DEADLINE_EXCEEDED); a caller that cancels cancels the app's call.
/// </summary>
internal static class GrpcProxy
{
    public const string AppIdHeader = "dapr-app-id";

    /// <summary>Marks the proxy's endpoint: its body is a stream of messages that admission must not wait for.</summary>
    internal sealed class EndpointMetadata
    {
        public static readonly EndpointMetadata Instance = new();
    }

    public static IEndpointRouteBuilder MapGrpcProxy(this IEndpointRouteBuilder endpoints)
    {
        var ports = endpoints.ServiceProvider.GetRequiredService<ListenerPorts>();
        // Any /{service}/{method} on the gRPC port that no gRPC service of the runtime serves; on the HTTP port the
        // same path is left to the HTTP invocation fallback.
        var pattern = RoutePatternFactory.Parse("/{service}/{method}", defaults: null,
            parameterPolicies: new RouteValueDictionary { ["service"] = new OnGrpcListener(ports) });
        endpoints.Map(pattern, ProxyAsync)
            .WithMetadata(new ApiEndpointMetadata(Listener.DaprGrpc, "invoke"), EndpointMetadata.Instance);
        return endpoints;
    }

    private static Task ProxyAsync(HttpContext context)
    {
        var request = context.Request;
        if (!DaprErrorWriter.IsGrpc(context))
        {
            throw new DaprApiException(404, "ERR_NOT_FOUND", $"no gRPC method at {request.Path}: the call is not gRPC (content type application/grpc)");
        }
        var appId = request.Headers[AppIdHeader].ToString();
        if (appId.Length == 0)
        {
            throw new DaprApiException(501, "ERR_NOT_FOUND", $"unknown service or method {request.Path}; to proxy a call to an app, send dapr-app-id metadata");
        }
        var invocation = context.RequestServices.GetRequiredService<ServiceInvocation>();
        // The caller's deadline, when it gave one, ends the call here too; without one the call ends with the caller's.
        return Deadline(request.Headers["grpc-timeout"]) is { } deadline
            ? ForwardWithDeadlineAsync(context, invocation, appId, deadline)
            : ForwardAsync(context, invocation, appId, null, null);
    }

    private static async Task ForwardWithDeadlineAsync(HttpContext context, ServiceInvocation invocation, string appId, TimeSpan deadline)
    {
        using var deadlineSource = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        deadlineSource.CancelAfter(deadline);
        await ForwardAsync(context, invocation, appId, deadline, deadlineSource).ConfigureAwait(false);
    }

    private static async Task ForwardAsync(HttpContext context, ServiceInvocation invocation, string appId, TimeSpan? deadline, CancellationTokenSource? deadlineSource)
    {
        var request = context.Request;
        var token = deadlineSource?.Token ?? context.RequestAborted;
        var arrived = ArrivedBody(request.BodyReader);
        var streamed = arrived is null ? new CallerMessages(request.Body) : null;
        HttpResponseMessage response;
        try
        {
            response = await invocation.InvokeAsync(context.Tenant(), new InvocationRequest
            {
                TargetAppId = appId,
                Method = request.Path.Value ?? "",
                MethodForm = MethodPathForm.Decoded,
                Verb = "POST",
                Headers = request.Headers,
                Body = arrived,
                BodyStream = streamed,
                ContentType = request.ContentType,
                ClientAddress = context.Connection.RemoteIpAddress?.ToString(),
                Host = request.Host.Value,
                Scheme = request.Scheme,
                Proxied = true,
            }, token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (DeadlinePassed(context, deadlineSource))
        {
            throw DeadlineExceeded(appId, deadline);
        }
        catch (DaprApiException) when (DeadlinePassed(context, deadlineSource))
        {
            throw DeadlineExceeded(appId, deadline); // a body read cut short by the deadline is blamed on nobody
        }

        using (response)
        {
            var answer = context.Response;
            answer.StatusCode = (int)response.StatusCode;
            foreach (var (name, values) in response.Headers.NonValidated)
            {
                if (ServiceInvocation.PassesBack(name))
                {
                    answer.Headers[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]);
                }
            }
            foreach (var (name, values) in response.Content.Headers.NonValidated)
            {
                if (!name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                {
                    answer.Headers[name] = values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]);
                }
            }
            try
            {
                var stream = await response.Content.ReadAsStreamAsync(token).ConfigureAwait(false);
                await using (stream.ConfigureAwait(false))
                {
                    await CopyAsync(stream, answer.BodyWriter, token).ConfigureAwait(false);
                }
                foreach (var (name, values) in response.TrailingHeaders.NonValidated)
                {
                    answer.AppendTrailer(name, values.Count == 1 ? new StringValues(values.ToString()) : new StringValues([.. values]));
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException && !context.RequestAborted.IsCancellationRequested)
            {
                // The app's stream broke (or the deadline passed, or the caller's messages went past its body limit)
                // after the app's headers: the status goes in the trailers.
                var (status, message) = deadlineSource is { IsCancellationRequested: true }
                    ? (global::Grpc.Core.StatusCode.DeadlineExceeded, DeadlineExceeded(appId, deadline).Message)
                    : streamed is { Refused: true }
                        ? BodyTooLarge(context)
                        : (global::Grpc.Core.StatusCode.Unavailable, $"the call to app {appId} broke off: {ex.Message}");
                if (!answer.HasStarted)
                {
                    answer.Headers["grpc-status"] = ((int)status).ToString(CultureInfo.InvariantCulture);
                    answer.Headers["grpc-message"] = Uri.EscapeDataString(message);
                    return;
                }
                answer.AppendTrailer("grpc-status", ((int)status).ToString(CultureInfo.InvariantCulture));
                answer.AppendTrailer("grpc-message", Uri.EscapeDataString(message));
            }
        }
    }

    /// <summary>The caller's refusal, counted, when its messages went past its body limit while they streamed to the app.</summary>
    private static (global::Grpc.Core.StatusCode Status, string Message) BodyTooLarge(HttpContext context)
    {
        var tenant = context.Tenant();
        context.RequestServices.GetRequiredService<RuntimeMetrics>().Rejected(tenant.AppId, RejectionReason.BodyTooLarge);
        var refusal = new DaprApiException(413, "ERR_TENANT_BODY_TOO_LARGE",
            $"request body exceeds the limit of {tenant.Limits.MaxRequestBodyBytes} bytes for app {tenant.AppId}");
        return (DaprErrors.GrpcStatusOf(refusal), $"{refusal.ErrorCode}: {refusal.Message}");
    }

    /// <summary>
    /// The caller's messages as they stream to the app. Notes when the server refused to read past the caller's body
    /// limit: the call to the app then breaks, and without the note the caller would be told the app's stream broke.
    /// </summary>
    private sealed class CallerMessages(Stream body) : Stream
    {
        private volatile bool _refused;

        public bool Refused => _refused;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                _refused = true;
                throw;
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return body.Read(buffer, offset, count);
            }
            catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                _refused = true;
                throw;
            }
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    /// <summary>Most bytes of a caller's messages that are sent on in one piece (<see cref="ArrivedBody"/>).</summary>
    internal const int MaxArrivedBody = 64 * 1024;

    /// <summary>
    /// The caller's messages when all of them had already arrived with the end of its stream (a unary call's message,
    /// mostly) and are at most <see cref="MaxArrivedBody"/> bytes: sent on in one piece, and sent again should the
    /// caller's resiliency policy retry. Otherwise null, and the messages stream on as they come.
    /// </summary>
    private static ReadOnlyMemory<byte>? ArrivedBody(PipeReader reader)
    {
        if (!reader.TryRead(out var result))
        {
            return null;
        }
        var buffer = result.Buffer;
        if (result.IsCompleted && !result.IsCanceled && buffer.Length <= MaxArrivedBody)
        {
            var whole = buffer.ToArray();
            reader.AdvanceTo(buffer.End);
            return whole;
        }
        reader.AdvanceTo(buffer.Start);
        return null;
    }

    /// <summary>Whether the caller's deadline, not the caller itself, ended the call.</summary>
    private static bool DeadlinePassed(HttpContext context, CancellationTokenSource? deadlineSource) =>
        deadlineSource is { IsCancellationRequested: true } && !context.RequestAborted.IsCancellationRequested;

    /// <summary>
    /// The app's messages on to the caller as they come: what has arrived is flushed whenever the app has nothing more
    /// ready (or 64 KiB are waiting), so a stream's message is never held back, and a unary answer leaves with its
    /// headers and trailers in one write.
    /// </summary>
    private static async Task CopyAsync(Stream source, PipeWriter target, CancellationToken cancellationToken)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            var unflushed = 0;
            var read = await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            while (read > 0)
            {
                target.Write(buffer.AsSpan(0, read));
                unflushed += read;
                var next = source.ReadAsync(buffer, cancellationToken);
                if (!next.IsCompleted || unflushed >= 64 * 1024)
                {
                    unflushed = 0;
                    await target.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
                read = await next.ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static DaprApiException DeadlineExceeded(string appId, TimeSpan? deadline) =>
        new(504, "ERR_DIRECT_INVOKE", $"failed to proxy to id: {appId}: the caller's deadline of {deadline?.TotalMilliseconds ?? 0:0.###} ms passed");

    /// <summary>A gRPC timeout header (<c>1-8 digits and a unit H M S m u n</c>), or null when absent or malformed.</summary>
    internal static TimeSpan? Deadline(StringValues header)
    {
        var text = header.ToString();
        if (text.Length is < 2 or > 9 || !long.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            return null;
        }
        var ticks = text[^1] switch
        {
            'H' => value * TimeSpan.TicksPerHour,
            'M' => value * TimeSpan.TicksPerMinute,
            'S' => value * TimeSpan.TicksPerSecond,
            'm' => value * TimeSpan.TicksPerMillisecond,
            'u' => value * TimeSpan.TicksPerMicrosecond,
            'n' => value / 100,
            _ => -1,
        };
        // CancelAfter takes at most about 49 days.
        return ticks < 0 ? null : TimeSpan.FromTicks(Math.Min(ticks, TimeSpan.FromDays(49).Ticks));
    }

    /// <summary>Matches only on the runtime's gRPC port.</summary>
    private sealed class OnGrpcListener(ListenerPorts ports) : IRouteConstraint
    {
        public bool Match(HttpContext? httpContext, IRouter? route, string routeKey, RouteValueDictionary values, RouteDirection routeDirection) =>
            httpContext is not null && ports.ListenerOf(httpContext.Connection.LocalPort) == Listener.DaprGrpc;
    }
}
