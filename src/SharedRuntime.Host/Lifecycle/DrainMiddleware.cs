using SharedRuntime.Http;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// First in the pipeline: counts requests in flight for the drain, and once the listeners are closed answers HTTP/1.x
/// requests with <c>Connection: close</c> so keep-alive clients open their next connection to the process that took over.
/// The check is made when the response starts, so a request already in flight when the drain began closes its
/// connection too. HTTP/2 connections get GOAWAY when the drain begins (<see cref="Http2ConnectionDrain"/>).
/// </summary>
internal sealed class DrainMiddleware(RequestDelegate next, ShutdownDrain drain)
{
    // One delegate for every request: registering it allocates nothing beyond Kestrel's own callback entry.
    private readonly Func<object, Task> _closeWhenDraining = state =>
    {
        if (drain.ClosingConnections)
        {
            // At response start: error writers clear the headers set before.
            ((HttpResponse)state).Headers.Connection = "close";
        }
        return Task.CompletedTask;
    };

    public Task InvokeAsync(HttpContext context)
    {
        if (!HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
        {
            context.Response.OnStarting(_closeWhenDraining, context.Response);
        }
        drain.RequestStarted();
        return RequestEnd.After(next, context, static state => ((ShutdownDrain)state).RequestFinished(), drain);
    }
}
