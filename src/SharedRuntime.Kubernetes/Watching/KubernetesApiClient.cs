using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace SharedRuntime.Kubernetes.Watching;

/// <summary>
/// The result of a list: the collection's resourceVersion and its items, or that the resource type does not exist (404)
/// or, where allowed, may not be read (403); <see cref="Status"/> says which.
/// </summary>
internal sealed record ListResult(bool Missing, string ResourceVersion, IReadOnlyList<JsonElement> Items, int Status = 200)
{
    public static ListResult NotInstalled { get; } = new(true, "", [], 404);

    public static ListResult NotReadable { get; } = new(true, "", [], 403);
}

/// <summary>One line of a watch stream.</summary>
internal readonly record struct WatchEvent(string Type, JsonElement Object);

/// <summary>The API server answered a request with an error status.</summary>
internal sealed class KubernetesApiException(int statusCode, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    /// <summary>410 Gone: the resourceVersion asked for is older than the server keeps; list again.</summary>
    public bool IsGone => StatusCode == (int)HttpStatusCode.Gone;
}

/// <summary>
/// Lists and watches through the HTTP client KubernetesClient builds from a kubeconfig or the in-cluster service
/// account (TLS and credentials included). Raw requests keep the watch protocol visible: one JSON event per line.
/// </summary>
internal sealed class KubernetesApiClient(k8s.Kubernetes client)
{
    private static readonly Uri Placeholder = new("http://placeholder/");

    /// <summary>Items asked for per page of a list; a list of more arrives in pages, each answer bounded.</summary>
    public const int PageSize = 500;

    /// <summary>Lists <paramref name="path"/> page by page (<c>limit</c> and <c>continue</c>), as one consistent list.</summary>
    /// <param name="forbiddenIsEmpty">A 403 reads as an empty, missing type rather than an error: for the optional
    /// cluster-scoped kinds, which a runtime confined to one namespace by a Role may not read.</param>
    public async Task<ListResult> ListAsync(string path, CancellationToken cancellationToken, bool forbiddenIsEmpty = false)
    {
        var items = new List<JsonElement>();
        string? version = null;
        string? next = null;
        do
        {
            var page = $"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}limit={PageSize}" +
                       (next is null ? "" : $"&continue={Uri.EscapeDataString(next)}");
            using var response = await SendAsync(page, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                return ListResult.NotInstalled;
            }
            if (response.StatusCode == HttpStatusCode.Forbidden && forbiddenIsEmpty)
            {
                return ListResult.NotReadable;
            }
            await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
            var root = document.RootElement;
            var metadata = root.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
            // Every page carries the version of the first: the list is one snapshot, watched from there.
            version ??= metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty("resourceVersion", out var rv) ? rv.GetString() ?? "" : "";
            next = metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty("continue", out var c) && c.GetString() is { Length: > 0 } token ? token : null;
            if (root.TryGetProperty("items", out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in list.EnumerateArray())
                {
                    items.Add(item.Clone());
                }
            }
        }
        while (next is not null);
        return new ListResult(false, version ?? "", items);
    }

    /// <summary>
    /// Reads one object by its path; null when it does not exist (404). An answer longer than
    /// <paramref name="maxBytes"/> is refused unread, so no object can make the runtime hold more than that.
    /// </summary>
    public async Task<JsonDocument?> GetAsync(string path, long maxBytes, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(path, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
        return await ReadBoundedAsync(response, path, maxBytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// POSTs <paramref name="json"/> to <paramref name="path"/> and reads the answer (an answer longer than
    /// <paramref name="maxBytes"/> is refused unread): for requests that create nothing but answer, as a TokenReview.
    /// </summary>
    public async Task<JsonDocument> PostAsync(string path, string json, long maxBytes, CancellationToken cancellationToken)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using var response = await SendAsync(path, HttpCompletionOption.ResponseHeadersRead, cancellationToken, HttpMethod.Post, content).ConfigureAwait(false);
        await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
        return await ReadBoundedAsync(response, path, maxBytes, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<JsonDocument> ReadBoundedAsync(HttpResponseMessage response, string path, long maxBytes, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > maxBytes)
        {
            throw new KubernetesApiException(413, $"{path}: the answer of {response.Content.Headers.ContentLength} bytes is over the limit of {maxBytes}");
        }
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                throw new KubernetesApiException(413, $"{path}: the answer is over the limit of {maxBytes} bytes");
            }
            buffer.Write(chunk, 0, read);
        }
        return JsonDocument.Parse(buffer.GetBuffer().AsMemory(0, (int)buffer.Length));
    }

    /// <summary>Watches from <paramref name="resourceVersion"/>; ends when the server closes the stream.</summary>
    public async IAsyncEnumerable<WatchEvent> WatchAsync(string path, string resourceVersion, TimeSpan timeout,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var query = $"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}watch=true&allowWatchBookmarks=true&resourceVersion={Uri.EscapeDataString(resourceVersion)}" +
                    $"&timeoutSeconds={(int)timeout.TotalSeconds}";
        using var response = await SendAsync(query, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
        await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var reader = new StreamReader(stream);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
        {
            if (line.Length == 0)
            {
                continue;
            }
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            var type = root.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            var obj = root.TryGetProperty("object", out var o) ? o.Clone() : default;
            yield return new WatchEvent(type, obj);
        }
    }

    /// <summary>Creates an object by POSTing <paramref name="json"/> to <paramref name="path"/>; true when created, false when it already exists (409).</summary>
    public async Task<bool> CreateAsync(string path, string json, CancellationToken cancellationToken)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        using var response = await SendAsync(path, HttpCompletionOption.ResponseContentRead, cancellationToken, HttpMethod.Post, content).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Conflict)
        {
            return false;
        }
        await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private async Task<HttpResponseMessage> SendAsync(string pathAndQuery, HttpCompletionOption completion, CancellationToken cancellationToken,
        HttpMethod? method = null, HttpContent? content = null)
    {
        var baseUri = client.BaseUri ?? Placeholder;
        using var request = new HttpRequestMessage(method ?? HttpMethod.Get, new Uri(baseUri, pathAndQuery.TrimStart('/'))) { Content = content };
        request.Headers.Accept.ParseAdd("application/json");
        if (client.Credentials is { } credentials)
        {
            await credentials.ProcessHttpRequestAsync(request, cancellationToken).ConfigureAwait(false);
        }
        return await client.HttpClient.SendAsync(request, completion, cancellationToken).ConfigureAwait(false);
    }

    private static async Task ThrowIfFailedAsync(HttpResponseMessage response, string path, CancellationToken cancellationToken)
    {
        if (response.IsSuccessStatusCode)
        {
            return;
        }
        var body = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
        var message = body;
        try
        {
            using var status = JsonDocument.Parse(body);
            if (status.RootElement.TryGetProperty("message", out var m) && m.GetString() is { } text)
            {
                message = text;
            }
        }
        catch (JsonException)
        {
            // not a Status object: keep the raw text
        }
        if (message.Length > 300)
        {
            message = message[..300];
        }
        throw new KubernetesApiException((int)response.StatusCode, $"{response.RequestMessage?.Method.Method ?? "GET"} {path}: {(int)response.StatusCode} {response.ReasonPhrase}: {message}");
    }
}
