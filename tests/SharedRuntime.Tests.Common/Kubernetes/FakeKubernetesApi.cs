using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.Tests.Kubernetes;

/// <summary>
/// An in-process Kubernetes API server for the resources the runtime reads. It speaks the real list and watch
/// protocol: a list answers <c>{"kind":"XList","metadata":{"resourceVersion"},"items"}</c>; a watch streams one JSON
/// event per line over chunked transfer, from a resourceVersion, with bookmarks. Tests add, change and delete objects,
/// drop every open watch, make old versions expire (410 Gone, as a status or as an ERROR event), hold lists back, and
/// make a resource type not installed (404). Lists and watches honour an equality <c>labelSelector</c> (<c>k=v,k2=v2</c>)
/// and <c>fieldSelector</c> (<c>metadata.name</c>, <c>spec.nodeName</c>), and lists answer in pages (<c>limit</c>,
/// <c>continue</c>). One object is read by name with a GET of its path.
/// </summary>
public sealed class FakeKubernetesApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Dictionary<string, JsonObject>> _objects = new(StringComparer.Ordinal);
    private readonly List<StoredEvent> _events = [];
    private readonly HashSet<string> _missing = new(StringComparer.Ordinal);
    private readonly HashSet<string> _forbidden = new(StringComparer.Ordinal);
    private readonly List<string> _requests = [];
    private readonly Dictionary<string, JsonObject> _createdEvents = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ServiceAccountToken> _serviceAccountTokens = new(StringComparer.Ordinal);
    private TaskCompletionSource _pulse = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _listsReleased = Released();
    private CancellationTokenSource _dropWatches = new();
    private static readonly DateTime CreationEpoch = new(2025, 1, 1, 0, 0, 0, DateTimeKind.Utc);
    private long _version = 1000;
    private long _oldestWatchable;

    /// <summary>A token the fake authenticates in TokenReviews: whose it is, for which audiences, until when.</summary>
    private sealed record ServiceAccountToken(string Namespace, string ServiceAccount, string[] Audiences, DateTimeOffset Expires);

    private sealed record StoredEvent(long Version, string Collection, string Namespace, string Type, JsonObject Object);

    private FakeKubernetesApi(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    /// <summary>When true an expired resourceVersion is answered with an ERROR watch event (code 410), else with HTTP 410.</summary>
    public bool GoneAsErrorEvent { get; set; }

    /// <summary>Every request seen, as "METHOD path?query" followed by " auth" when it carried a bearer token.</summary>
    public IReadOnlyList<string> Requests
    {
        get
        {
            lock (_gate)
            {
                return [.. _requests];
            }
        }
    }

    /// <summary>Events the runtime created (POST), by namespace/name; a second POST of one name is answered 409.</summary>
    public IReadOnlyList<JsonObject> CreatedEvents
    {
        get
        {
            lock (_gate)
            {
                return [.. _createdEvents.Values.Select(e => (JsonObject)e.DeepClone())];
            }
        }
    }

    public static async Task<FakeKubernetesApi> StartAsync()
    {
        var builder = TestHost.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var api = new FakeKubernetesApi(app);
        app.Run(api.HandleAsync);
        await app.StartAsync();
        api.Address = new Uri(app.Urls.First());
        return api;
    }

    /// <summary>A kubeconfig pointing at this server, with a bearer token.</summary>
    public string Kubeconfig() =>
        $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster:
                server: {Address.ToString().TrimEnd('/')}
            users:
            - name: fake
              user:
                token: fake-service-account-token
            contexts:
            - name: fake
              context:
                cluster: fake
                user: fake
            current-context: fake
            """;

    /// <summary>
    /// Makes TokenReviews authenticate <paramref name="token"/> as <c>system:serviceaccount:NS:SA</c> while it has not
    /// expired and for the audiences it was issued for, as the API server does a projected token.
    /// </summary>
    public void RegisterServiceAccountToken(string token, string @namespace, string serviceAccount, string[] audiences, DateTimeOffset expires)
    {
        lock (_gate)
        {
            _serviceAccountTokens[token] = new ServiceAccountToken(@namespace, serviceAccount, audiences, expires);
        }
    }

    /// <summary>
    /// A projected ServiceAccount token as the kubelet mounts one: a JWT whose payload carries the audiences, the
    /// subject and <c>exp</c> (its signature is random), registered with <see cref="RegisterServiceAccountToken"/>.
    /// </summary>
    public string IssueServiceAccountToken(string @namespace, string serviceAccount, string[] audiences, DateTimeOffset expires)
    {
        var token = MakeJwt(new JsonObject
        {
            ["aud"] = new JsonArray([.. audiences.Select(a => JsonValue.Create(a))]),
            ["sub"] = $"system:serviceaccount:{@namespace}:{serviceAccount}",
            ["exp"] = expires.ToUnixTimeSeconds(),
        });
        RegisterServiceAccountToken(token, @namespace, serviceAccount, audiences, expires);
        return token;
    }

    /// <summary>A JWT of <paramref name="claims"/> with a random signature, known to nobody unless registered.</summary>
    public static string MakeJwt(JsonObject claims)
    {
        static string Segment(byte[] bytes) => System.Buffers.Text.Base64Url.EncodeToString(bytes);
        return $"{Segment(Encoding.UTF8.GetBytes("""{"alg":"RS256","kid":"fake"}"""))}.{Segment(Encoding.UTF8.GetBytes(claims.ToJsonString()))}.{Segment(System.Security.Cryptography.RandomNumberGenerator.GetBytes(64))}";
    }

    /// <summary>How many TokenReviews the fake has answered.</summary>
    public int TokenReviews => Requests.Count(r => r.StartsWith("POST /apis/authentication.k8s.io/v1/tokenreviews", StringComparison.Ordinal));

    /// <summary>Creates or replaces an object given as JSON; returns its new resourceVersion.</summary>
    public long Apply(string json) => Apply(JsonNode.Parse(json)!.AsObject());

    /// <summary>
    /// Creates <paramref name="count"/> Secrets of <paramref name="bytes"/> bytes of data each in <paramref name="namespace"/>.
    /// Their values are one shared string, so the fake holds them cheaply while a client that read them could not.
    /// </summary>
    public void ApplyLargeSecrets(string @namespace, int count, int bytes)
    {
        var value = Convert.ToBase64String(new byte[bytes]);
        for (var i = 0; i < count; i++)
        {
            Apply(new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Secret",
                ["type"] = "Opaque",
                ["metadata"] = new JsonObject { ["name"] = $"large-{i}", ["namespace"] = @namespace },
                ["data"] = new JsonObject { ["blob"] = JsonValue.Create(value) },
            });
        }
    }

    private long Apply(JsonObject obj)
    {
        var collection = CollectionOf(obj["apiVersion"]!.GetValue<string>(), obj["kind"]!.GetValue<string>());
        var metadata = obj["metadata"]!.AsObject();
        if (!ClusterScoped(obj["kind"]!.GetValue<string>()))
        {
            metadata["namespace"] ??= "default";
        }
        metadata["uid"] ??= $"uid-{metadata["namespace"]}-{metadata["name"]}";
        var key = $"{metadata["namespace"]}/{metadata["name"]}";
        lock (_gate)
        {
            var version = ++_version;
            metadata["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            var objects = Objects(collection);
            var type = objects.TryGetValue(key, out var existing) ? "MODIFIED" : "ADDED";
            // Creation times one second apart per write, kept across updates, as the API server keeps them.
            metadata["creationTimestamp"] = existing?["metadata"]?["creationTimestamp"]?.GetValue<string>() ??
                CreationEpoch.AddSeconds(version).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
            objects[key] = obj;
            Record(new StoredEvent(version, collection, metadata["namespace"]?.GetValue<string>() ?? "", type, (JsonObject)obj.DeepClone()));
            return version;
        }
    }

    public void Delete(string apiVersion, string kind, string @namespace, string name)
    {
        var collection = CollectionOf(apiVersion, kind);
        lock (_gate)
        {
            if (!Objects(collection).Remove($"{@namespace}/{name}", out var obj))
            {
                throw new InvalidOperationException($"{kind} {@namespace}/{name} does not exist");
            }
            var version = ++_version;
            var gone = (JsonObject)obj.DeepClone();
            gone["metadata"]!["resourceVersion"] = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Record(new StoredEvent(version, collection, @namespace, "DELETED", gone));
        }
    }

    /// <summary>Aborts every open watch connection, as a restarting API server or a broken network would.</summary>
    public void DropWatches()
    {
        CancellationTokenSource old;
        lock (_gate)
        {
            old = _dropWatches;
            _dropWatches = new CancellationTokenSource();
        }
        old.Cancel();
    }

    /// <summary>Forgets the event history: any watch from a version the client already has is answered 410 Gone.</summary>
    public void Compact()
    {
        lock (_gate)
        {
            _oldestWatchable = _version;
            _events.Clear();
        }
    }

    /// <summary>Lists wait until <see cref="ReleaseLists"/>.</summary>
    public void HoldLists()
    {
        lock (_gate)
        {
            _listsReleased = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
    }

    public void ReleaseLists()
    {
        lock (_gate)
        {
            _listsReleased.TrySetResult();
        }
    }

    /// <summary>Makes a resource type answer 404, as when its CRD is not installed (plural and group: "components.dapr.io").</summary>
    public void SetInstalled(string pluralDotGroup, bool installed)
    {
        lock (_gate)
        {
            if (installed)
            {
                _missing.Remove(pluralDotGroup);
            }
            else
            {
                _missing.Add(pluralDotGroup);
            }
        }
    }

    /// <summary>Makes a resource type answer 403, as when the runtime's role does not grant reading it ("namespaces.v1").</summary>
    public void Forbid(string pluralDotGroup)
    {
        lock (_gate)
        {
            _forbidden.Add(pluralDotGroup);
        }
    }

    private static TaskCompletionSource Released()
    {
        var released = new TaskCompletionSource();
        released.SetResult();
        return released;
    }

    private void Record(StoredEvent stored)
    {
        _events.Add(stored);
        var pulse = _pulse;
        _pulse = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        pulse.SetResult();
    }

    private Dictionary<string, JsonObject> Objects(string collection)
    {
        if (!_objects.TryGetValue(collection, out var objects))
        {
            objects = new Dictionary<string, JsonObject>(StringComparer.Ordinal);
            _objects[collection] = objects;
        }
        return objects;
    }

    private static string CollectionOf(string apiVersion, string kind)
    {
        var plural = kind switch
        {
            "Tenant" => "tenants",
            "Component" => "components",
            "Subscription" => "subscriptions",
            "Resiliency" => "resiliencies",
            "Configuration" => "configurations",
            "HTTPEndpoint" => "httpendpoints",
            "Secret" => "secrets",
            "EndpointSlice" => "endpointslices",
            "Pod" => "pods",
            "Namespace" => "namespaces",
            "TenantLimitPolicy" => "tenantlimitpolicies",
            _ => throw new ArgumentException($"the fake API server does not serve {kind}"),
        };
        return $"{apiVersion}/{plural}";
    }

    private static bool ClusterScoped(string kind) => kind is "Namespace" or "TenantLimitPolicy";

    /// <summary>Creates a core/v1 Event: 201, or 409 when one of that name exists.</summary>
    private async Task CreateEventAsync(HttpContext context, string ns)
    {
        var obj = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
        var key = $"{ns}/{obj["metadata"]?["name"]?.GetValue<string>()}";
        bool created;
        lock (_gate)
        {
            created = _createdEvents.TryAdd(key, obj);
        }
        if (!created)
        {
            await StatusAsync(context, 409, "AlreadyExists", $"events \"{key}\" already exists");
            return;
        }
        context.Response.StatusCode = 201;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(obj.ToJsonString());
    }

    /// <summary>
    /// Answers a TokenReview as the API server does: authenticated when the token is registered, not expired and issued
    /// for one of the audiences asked for (then <c>status.audiences</c> are those), else not, with an error.
    /// </summary>
    private async Task ReviewTokenAsync(HttpContext context)
    {
        var review = (await JsonNode.ParseAsync(context.Request.Body))!.AsObject();
        var token = review["spec"]?["token"]?.GetValue<string>() ?? "";
        var wanted = review["spec"]?["audiences"]?.AsArray().Select(a => a!.GetValue<string>()).ToArray() ?? [];
        ServiceAccountToken? known;
        lock (_gate)
        {
            known = _serviceAccountTokens.GetValueOrDefault(token);
        }
        var audiences = known?.Audiences.Intersect(wanted, StringComparer.Ordinal).ToArray() ?? [];
        var status = new JsonObject();
        if (known is null)
        {
            status["authenticated"] = false;
            status["error"] = "[invalid bearer token, token lookup failed]";
        }
        else if (known.Expires <= DateTimeOffset.UtcNow)
        {
            status["authenticated"] = false;
            status["error"] = "[invalid bearer token, square/go-jose/jwt: validation failed, token is expired (exp)]";
        }
        else if (audiences.Length == 0)
        {
            status["authenticated"] = false;
            status["error"] = "[invalid bearer token, token audiences [...] is invalid for the target audiences]";
        }
        else
        {
            status["authenticated"] = true;
            status["user"] = new JsonObject
            {
                ["username"] = $"system:serviceaccount:{known.Namespace}:{known.ServiceAccount}",
                ["uid"] = $"uid-{known.Namespace}-{known.ServiceAccount}",
                ["groups"] = new JsonArray("system:serviceaccounts", $"system:serviceaccounts:{known.Namespace}", "system:authenticated"),
            };
            status["audiences"] = new JsonArray([.. audiences.Select(a => JsonValue.Create(a))]);
        }
        review["status"] = status;
        review["spec"]!["token"] = "";
        context.Response.StatusCode = 201;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(review.ToJsonString());
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        lock (_gate)
        {
            _requests.Add($"{request.Method} {request.Path}{request.QueryString}{(request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.Ordinal) ? " auth" : "")}");
        }
        if (!TryRoute(request.Path.Value ?? "", out var apiVersion, out var plural, out var ns, out var objectName))
        {
            await StatusAsync(context, 404, "NotFound", $"the server could not find the requested resource {request.Path}");
            return;
        }
        if (request.Method == "POST" && plural == "tokenreviews" && apiVersion == "authentication.k8s.io/v1" && ns is null)
        {
            await ReviewTokenAsync(context);
            return;
        }
        if (request.Method == "POST" && plural == "events" && ns is not null)
        {
            await CreateEventAsync(context, ns);
            return;
        }
        var collection = $"{apiVersion}/{plural}";
        bool missing;
        bool forbidden;
        Task listsReleased;
        lock (_gate)
        {
            missing = _missing.Contains($"{plural}.{apiVersion.Split('/')[0]}");
            forbidden = _forbidden.Contains($"{plural}.{apiVersion.Split('/')[0]}");
            listsReleased = _listsReleased.Task;
        }
        if (forbidden)
        {
            await StatusAsync(context, 403, "Forbidden", $"{plural} is forbidden: the runtime's role does not grant it");
            return;
        }
        if (missing)
        {
            await StatusAsync(context, 404, "NotFound", "the server could not find the requested resource");
            return;
        }
        if (objectName is not null)
        {
            await GetAsync(context, $"{apiVersion}/{plural}", ns!, objectName);
            return;
        }
        var labels = LabelSelector(request.Query["labelSelector"].ToString());
        var fields = FieldSelector(request.Query["fieldSelector"].ToString());
        Func<JsonObject, bool> selector = obj => labels(obj) && fields(obj);
        if (request.Query["watch"] == "true")
        {
            await WatchAsync(context, collection, ns, long.Parse(request.Query["resourceVersion"].ToString(), System.Globalization.CultureInfo.InvariantCulture),
                request.Query["allowWatchBookmarks"] == "true", selector);
            return;
        }
        await listsReleased.WaitAsync(context.RequestAborted);
        await ListAsync(context, apiVersion, plural, collection, ns, selector);
    }

    private async Task GetAsync(HttpContext context, string collection, string ns, string name)
    {
        JsonObject? found;
        lock (_gate)
        {
            found = Objects(collection).TryGetValue($"{ns}/{name}", out var obj) ? (JsonObject)obj.DeepClone() : null;
        }
        if (found is null)
        {
            await StatusAsync(context, 404, "NotFound", $"{collection} \"{name}\" not found");
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(found.ToJsonString());
    }

    /// <summary>An equality field selector on <c>metadata.name</c>, <c>metadata.namespace</c> or <c>spec.nodeName</c>.</summary>
    private static Func<JsonObject, bool> FieldSelector(string selector)
    {
        var wanted = selector.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(term => term.Split('=', 2))
            .Select(kv => (Path: kv[0].Split('.'), Value: kv.Length > 1 ? kv[1] : ""))
            .ToList();
        return obj => wanted.All(w => w.Path.Aggregate((JsonNode?)obj, (node, part) => node?[part])?.GetValue<string>() == w.Value);
    }

    /// <summary>An equality label selector as a test on an object; everything matches an empty one.</summary>
    private static Func<JsonObject, bool> LabelSelector(string selector)
    {
        var wanted = selector.Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(term => term.Split('=', 2))
            .Select(kv => (Key: kv[0], Value: kv.Length > 1 ? kv[1] : ""))
            .ToList();
        return obj => wanted.All(w => obj["metadata"]?["labels"]?[w.Key]?.GetValue<string>() == w.Value);
    }

    private static bool TryRoute(string path, out string apiVersion, out string plural, out string? ns, out string? name)
    {
        var parts = path.Trim('/').Split('/');
        apiVersion = plural = "";
        ns = null;
        name = null;
        int rest;
        if (parts is ["api", var v, ..])
        {
            apiVersion = v;
            rest = 2;
        }
        else if (parts is ["apis", var g, var v2, ..])
        {
            apiVersion = $"{g}/{v2}";
            rest = 3;
        }
        else
        {
            return false;
        }
        var tail = parts[rest..];
        if (tail is ["namespaces", var n, var p])
        {
            ns = n;
            plural = p;
            return true;
        }
        if (tail is ["namespaces", var n2, var p2, var one])
        {
            ns = n2;
            plural = p2;
            name = Uri.UnescapeDataString(one);
            return true;
        }
        if (tail is [var only])
        {
            plural = only;
            return true;
        }
        return false;
    }

    private async Task ListAsync(HttpContext context, string apiVersion, string plural, string collection, string? ns, Func<JsonObject, bool> selected)
    {
        var items = new JsonArray();
        string version;
        var limit = int.TryParse(context.Request.Query["limit"], out var l) && l > 0 ? l : int.MaxValue;
        var offset = int.TryParse(context.Request.Query["continue"], out var c) ? c : 0;
        string? next = null;
        lock (_gate)
        {
            var matching = Objects(collection).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value)
                .Where(o => (ns is null || o["metadata"]!["namespace"]?.GetValue<string>() == ns) && selected(o)).ToList();
            if (offset + limit < matching.Count)
            {
                next = (offset + limit).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }
            foreach (var obj in matching.Skip(offset).Take(limit))
            {
                var item = (JsonObject)obj.DeepClone();
                if (plural is "secrets" or "endpointslices" or "pods" or "namespaces")
                {
                    // Like the real server, items of built-in lists carry no apiVersion and kind.
                    item.Remove("apiVersion");
                    item.Remove("kind");
                }
                items.Add(item);
            }
            version = _version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        var kind = plural switch
        {
            "tenants" => "TenantList",
            "components" => "ComponentList",
            "subscriptions" => "SubscriptionList",
            "resiliencies" => "ResiliencyList",
            "configurations" => "ConfigurationList",
            "httpendpoints" => "HTTPEndpointList",
            "endpointslices" => "EndpointSliceList",
            "pods" => "PodList",
            "namespaces" => "NamespaceList",
            "tenantlimitpolicies" => "TenantLimitPolicyList",
            _ => "SecretList",
        };
        var list = new JsonObject
        {
            ["apiVersion"] = apiVersion,
            ["kind"] = kind,
            ["metadata"] = next is null ? new JsonObject { ["resourceVersion"] = version } : new JsonObject { ["resourceVersion"] = version, ["continue"] = next },
            ["items"] = items,
        };
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(list.ToJsonString());
    }

    private async Task WatchAsync(HttpContext context, string collection, string? ns, long from, bool bookmarks, Func<JsonObject, bool> selected)
    {
        CancellationToken dropped;
        lock (_gate)
        {
            dropped = _dropWatches.Token;
        }
        bool tooOld;
        lock (_gate)
        {
            tooOld = from < _oldestWatchable;
        }
        if (tooOld && !GoneAsErrorEvent)
        {
            await StatusAsync(context, 410, "Expired", $"too old resource version: {from}");
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.StartAsync();
        if (tooOld)
        {
            await WriteEventAsync(context, "ERROR", Status(410, "Expired", $"too old resource version: {from}"));
            return;
        }
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(dropped, context.RequestAborted);
        var cursor = from;
        var sentBookmark = !bookmarks;
        try
        {
            while (true)
            {
                List<StoredEvent> pending;
                Task pulse;
                long now;
                lock (_gate)
                {
                    pending = _events.Where(e => e.Version > cursor && e.Collection == collection && (ns is null || e.Namespace == ns)).ToList();
                    pulse = _pulse.Task;
                    now = _version;
                }
                foreach (var stored in pending)
                {
                    // Events of objects the selector leaves out move the cursor but are not sent.
                    if (selected(stored.Object))
                    {
                        await WriteEventAsync(context, stored.Type, stored.Object);
                    }
                    cursor = stored.Version;
                }
                if (!sentBookmark)
                {
                    sentBookmark = true;
                    cursor = Math.Max(cursor, now);
                    var metadata = new JsonObject { ["resourceVersion"] = now.ToString(System.Globalization.CultureInfo.InvariantCulture) };
                    await WriteEventAsync(context, "BOOKMARK", new JsonObject { ["kind"] = "Tenant", ["metadata"] = metadata });
                }
                await pulse.WaitAsync(linked.Token);
            }
        }
        catch (OperationCanceledException) when (dropped.IsCancellationRequested)
        {
            context.Abort();
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
    }

    private static async Task WriteEventAsync(HttpContext context, string type, JsonObject obj)
    {
        var line = new JsonObject { ["type"] = type, ["object"] = obj.DeepClone() }.ToJsonString() + "\n";
        await context.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(line));
        await context.Response.Body.FlushAsync();
    }

    private static JsonObject Status(int code, string reason, string message) => new()
    {
        ["kind"] = "Status",
        ["apiVersion"] = "v1",
        ["metadata"] = new JsonObject(),
        ["status"] = "Failure",
        ["message"] = message,
        ["reason"] = reason,
        ["code"] = code,
    };

    private static async Task StatusAsync(HttpContext context, int code, string reason, string message)
    {
        context.Response.StatusCode = code;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Status(code, reason, message).ToJsonString());
    }

    public async ValueTask DisposeAsync()
    {
        DropWatches();
        ReleaseLists();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
