using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace SharedRuntime.AppChannel;

internal sealed partial class ServiceInvocation
{
    /// <summary>Most method URIs kept per app channel for proxied calls; past it a call parses its own.</summary>
    internal const int MaxProxiedUrisPerChannel = 256;

    /// <summary>
    /// The URIs of the gRPC methods proxied into each channel, parsed once: a gRPC app has a fixed set of methods, so a
    /// proxied call finds its URI instead of building and parsing one. Kept while the channel lives, bounded per channel.
    /// </summary>
    private static readonly ConditionalWeakTable<AppChannel, ConcurrentDictionary<string, Uri>> ProxiedUris = new();

    /// <summary>
    /// A proxied gRPC call as the app receives it: POST to the method's URI over HTTP/2, the caller's messages in one
    /// piece when they had all arrived or else streamed on as they come (<see cref="FlushingStreamContent"/>), <c>te: trailers</c>, and the caller's metadata with what
    /// the runtime says itself (<see cref="AddHeaders"/>).
    /// </summary>
    private static HttpRequestMessage BuildProxied(AppChannel channel, InvocationRequest request, CallerBodyStream? callerBody, string method, string callerAppId, string traceparent)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, ProxiedUri(channel, method));
        if (request.Body is { } whole)
        {
            message.Content = new ReadOnlyMemoryContent(whole);
        }
        else if (callerBody is not null)
        {
            message.Content = new FlushingStreamContent(callerBody);
            message.Options.Set(CallerBodyStream.Key, callerBody);
        }
        message.Headers.TryAddWithoutValidation("te", "trailers"); // gRPC asks for it; HTTP/2 allows no other TE
        AddHeaders(message, channel, request, callerAppId, traceparent);
        return message;
    }

    private static Uri ProxiedUri(AppChannel channel, string method)
    {
        var uris = ProxiedUris.GetValue(channel, static _ => new ConcurrentDictionary<string, Uri>(StringComparer.Ordinal));
        if (uris.TryGetValue(method, out var uri))
        {
            return uri;
        }
        uri = new Uri($"{channel.Endpoint.OriginalString}/{method}", UriKind.Absolute);
        if (uris.Count < MaxProxiedUrisPerChannel)
        {
            uris.TryAdd(method, uri);
        }
        return uri;
    }
}
