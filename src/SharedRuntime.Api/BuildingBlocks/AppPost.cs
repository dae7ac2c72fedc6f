using System.Net.Http.Headers;
using SharedRuntime.Admission;
using SharedRuntime.AppChannel;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// Posts what a component produced for an app (an input binding's event, a configuration change) the way Dapr calls an
/// app: <c>POST /&lt;path&gt;</c> with a JSON body through the app's channel (its slots, in a line of its own, its
/// timeout and breaker) and the component's inbound Resiliency policy; a 2xx answer is success, anything else a failure
/// the policy may retry. The app's <c>appApiToken</c> goes along as <c>dapr-api-token</c>.
/// </summary>
internal static class AppPost
{
    /// <summary>Most calls of one line (one binding, one subscription) waiting for a slot of the app.</summary>
    public const int MaxWaitingPerLine = 16;

    private static readonly MediaTypeHeaderValue Json = new("application/json");

    /// <summary>Sends the call; null when the app answered 2xx, else why not (never throws but for <paramref name="cancellationToken"/>).</summary>
    public static async Task<string?> SendAsync(AppChannels channels, ResiliencyPolicies policies, string appId, string component, string line, string path,
        ReadOnlyMemory<byte> body, IReadOnlyDictionary<string, string>? headers, CancellationToken cancellationToken)
    {
        var channel = channels.Find(appId);
        if (channel is null)
        {
            return "the app has no channel (no appEndpoint)";
        }
        try
        {
            await channel.Calls.EnterAsync(line, MaxWaitingPerLine, cancellationToken).ConfigureAwait(false);
        }
        catch (FairQueueFullException ex)
        {
            return ex.Message;
        }
        try
        {
            using var result = await policies.ForInbound(appId, component).ExecuteAsync(
                static async (s, token) =>
                {
                    var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"{s.channel.Endpoint.OriginalString}/{s.path.TrimStart('/')}", UriKind.Absolute))
                    {
                        Content = new ReadOnlyMemoryContent(s.body),
                    };
                    request.Content.Headers.ContentType = Json;
                    if (s.headers is not null)
                    {
                        foreach (var (name, value) in s.headers)
                        {
                            request.Headers.TryAddWithoutValidation(name, value);
                        }
                    }
                    if (s.channel.Config.AppApiToken is { } appToken)
                    {
                        request.Headers.TryAddWithoutValidation("dapr-api-token", appToken);
                    }
                    return await s.channel.SendAsync(request, ClassifyAsync, token).ConfigureAwait(false);
                },
                (channel, path, body, headers),
                cancellationToken).ConfigureAwait(false);
            return result.Failed ? result.Problem : null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return ex.Message;
        }
        finally
        {
            channel.Calls.Exit();
        }
    }

    private static ValueTask<AppCallResult> ClassifyAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        using (response)
        {
            var status = (int)response.StatusCode;
            return ValueTask.FromResult(status is >= 200 and <= 299
                ? new AppCallResult { StatusCode = status }
                : new AppCallResult { StatusCode = status, Failed = true, Problem = $"the app answered {status}" });
        }
    }
}
