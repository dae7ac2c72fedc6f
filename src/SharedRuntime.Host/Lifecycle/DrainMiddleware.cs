namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// First in the pipeline: counts requests in flight for the drain, and once the listeners are closed answers HTTP/1.x
/// requests with <c>Connection: close</c> so keep-alive clients open their next connection to the process that took over.
/// HTTP/2 needs nothing here: Kestrel sends GOAWAY when it stops.
/// </summary>
internal sealed class DrainMiddleware(RequestDelegate next, ShutdownDrain drain)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (drain.ClosingConnections && !HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol))
        {
            // At response start: error writers clear the headers set before.
            context.Response.OnStarting(static state =>
            {
                ((HttpResponse)state).Headers.Connection = "close";
                return Task.CompletedTask;
            }, context.Response);
        }
        drain.RequestStarted();
        Task task;
        try
        {
            task = next(context);
        }
        catch
        {
            drain.RequestFinished();
            throw;
        }
        if (task.IsCompleted)
        {
            drain.RequestFinished();
            return task;
        }
        return AwaitAsync(task);
    }

    private async Task AwaitAsync(Task task)
    {
        try
        {
            await task;
        }
        finally
        {
            drain.RequestFinished();
        }
    }
}
