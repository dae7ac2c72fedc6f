using Microsoft.AspNetCore.Http;

namespace SharedRuntime.Http;

/// <summary>For a middleware that counts requests in flight: the rest of the pipeline, then the count's end.</summary>
public static class RequestEnd
{
    /// <summary>
    /// Runs <paramref name="next"/>, then <paramref name="end"/> with <paramref name="state"/> however the request ends;
    /// with no async frame when it ends at once.
    /// </summary>
    public static Task After(RequestDelegate next, HttpContext context, Action<object> end, object state)
    {
        Task task;
        try
        {
            task = next(context);
        }
        catch
        {
            end(state);
            throw;
        }
        if (task.IsCompleted)
        {
            end(state);
            return task;
        }
        return AwaitAsync(task, end, state);
    }

    private static async Task AwaitAsync(Task task, Action<object> end, object state)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        finally
        {
            end(state);
        }
    }
}
