using System.Globalization;
using System.Net.Http.Headers;

namespace SharedRuntime.Components.Bindings;

/// <summary>
/// <c>bindings.http</c> (output): sends the request to <c>url</c> (+ metadata <c>path</c>), other request metadata as
/// headers. Answers the response body with metadata <c>statusCode</c> and the response headers; a status of 400 or
/// more is an error, as in Dapr. Responses larger than <c>maxResponseBodyBytes</c> (4 MiB) are refused.
/// </summary>
internal sealed class HttpOutputBinding : IOutputBinding
{
    private static readonly Dictionary<string, HttpMethod> Methods = new(StringComparer.OrdinalIgnoreCase)
    {
        ["create"] = HttpMethod.Post, ["post"] = HttpMethod.Post, ["get"] = HttpMethod.Get, ["head"] = HttpMethod.Head,
        ["put"] = HttpMethod.Put, ["patch"] = HttpMethod.Patch, ["delete"] = HttpMethod.Delete,
        ["options"] = HttpMethod.Options, ["trace"] = HttpMethod.Trace,
    };

    private readonly Uri _url;
    private readonly long _maxResponseBytes;
    private readonly HttpClient _client;
    private readonly bool _ownsClient;

    public HttpOutputBinding(ComponentContext context, IHttpClientFactory? clients)
    {
        var url = context.GetMetadata("url") ?? throw new ComponentException("metadata 'url' is required");
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw new ComponentException($"url '{url}' is not an absolute http or https URL");
        }
        _url = uri;
        _maxResponseBytes = long.TryParse(context.GetMetadata("maxResponseBodyBytes"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) ? max : 4 * 1024 * 1024;
        _ownsClient = clients is null;
        _client = clients?.CreateClient("bindings.http") ?? new HttpClient();
        _client.Timeout = Timeout.InfiniteTimeSpan;
    }

    public IReadOnlyList<string> Capabilities { get; } = [];

    public IReadOnlyList<string> Operations { get; } = ["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"];

    public ValueTask InitAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public async ValueTask<BindingResponse> InvokeAsync(BindingRequest request, CancellationToken cancellationToken)
    {
        if (!Methods.TryGetValue(request.Operation, out var method))
        {
            throw new ComponentException($"operation {request.Operation} is not supported");
        }
        var target = _url;
        if (request.Metadata.TryGetValue("path", out var path) && path.Length > 0)
        {
            target = Uri.TryCreate(_url.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/" + path.TrimStart('/') + _url.Query, UriKind.Absolute, out var withPath)
                ? withPath
                : throw new ArgumentException($"metadata 'path' does not make a URL with {_url.GetLeftPart(UriPartial.Path)}", nameof(request));
        }
        using var message = new HttpRequestMessage(method, target);
        if (method != HttpMethod.Get && method != HttpMethod.Head)
        {
            message.Content = new ReadOnlyMemoryContent(request.Data);
        }
        foreach (var (key, value) in request.Metadata)
        {
            if (key == "path")
            {
                continue;
            }
            if (string.Equals(key, "Content-Type", StringComparison.OrdinalIgnoreCase) && message.Content is not null)
            {
                if (MediaTypeHeaderValue.TryParse(value, out var contentType))
                {
                    message.Content.Headers.ContentType = contentType;
                }
                continue;
            }
            if (!IsSendableHeaderValue(value))
            {
                // HttpClient would refuse to send it and fail the call as if the target had.
                throw new ArgumentException($"metadata '{key}' is sent as a header and may hold only printable ASCII characters", nameof(request));
            }
            message.Headers.TryAddWithoutValidation(key, value);
        }
        using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.Content.Headers.ContentLength > _maxResponseBytes)
        {
            throw new ComponentException($"response of {response.Content.Headers.ContentLength} bytes is larger than maxResponseBodyBytes {_maxResponseBytes}");
        }
        var body = await ReadBoundedAsync(response.Content, cancellationToken).ConfigureAwait(false);
        var status = (int)response.StatusCode;
        if (status >= 400)
        {
            throw new ComponentException($"received status code {status} from {target.GetLeftPart(UriPartial.Path)}");
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal) { ["statusCode"] = status.ToString(CultureInfo.InvariantCulture) };
        foreach (var header in response.Headers.Concat(response.Content.Headers))
        {
            metadata[header.Key] = string.Join(", ", header.Value);
        }
        return new BindingResponse(body, metadata, response.Content.Headers.ContentType?.ToString());
    }

    private static bool IsSendableHeaderValue(string value)
    {
        foreach (var c in value)
        {
            if (c is (< ' ' and not '\t') or > '~')
            {
                return false;
            }
        }
        return true;
    }

    private async Task<byte[]> ReadBoundedAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > _maxResponseBytes)
            {
                throw new ComponentException($"response is larger than maxResponseBodyBytes {_maxResponseBytes}");
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    public ValueTask DisposeAsync()
    {
        if (_ownsClient)
        {
            _client.Dispose();
        }
        return ValueTask.CompletedTask;
    }
}
