using System.Net;
using System.Runtime.CompilerServices;
using System.Text.Json;

namespace SharedRuntime.Kubernetes.Watching;

/// <summary>The result of a list: the collection's resourceVersion and its items, or that the resource type does not exist.</summary>
internal sealed record ListResult(bool Missing, string ResourceVersion, IReadOnlyList<JsonElement> Items)
{
    public static ListResult NotInstalled { get; } = new(true, "", []);
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

    public async Task<ListResult> ListAsync(string path, CancellationToken cancellationToken)
    {
        using var response = await SendAsync(path, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return ListResult.NotInstalled;
        }
        await ThrowIfFailedAsync(response, path, cancellationToken).ConfigureAwait(false);
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var document = await JsonDocument.ParseAsync(stream, cancellationToken: cancellationToken).ConfigureAwait(false);
        var root = document.RootElement;
        var version = root.TryGetProperty("metadata", out var metadata) && metadata.TryGetProperty("resourceVersion", out var rv)
            ? rv.GetString() ?? ""
            : "";
        var items = new List<JsonElement>();
        if (root.TryGetProperty("items", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in list.EnumerateArray())
            {
                items.Add(item.Clone());
            }
        }
        return new ListResult(false, version, items);
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
