using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace SharedRuntime.FuzzTests.Generators;

/// <summary>One generated HTTP request: <see cref="Target"/> is the path and query exactly as sent (already escaped).</summary>
internal sealed record HttpCase(string Route, string Method, string Target, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body, string? ContentType, string? Token)
{
    public override string ToString()
    {
        var text = new StringBuilder($"{Method} {FuzzText.Printable(Target, 400)} [{Route}]");
        text.Append(Token is null ? "\n  (no dapr-api-token)" : Token == FuzzNode.AttackerToken ? "" : $"\n  dapr-api-token: {Token}");
        foreach (var (name, value) in Headers)
        {
            text.Append($"\n  {name}: {FuzzText.PrintableHeader(value)}");
        }
        if (ContentType is not null)
        {
            text.Append($"\n  Content-Type: {FuzzText.PrintableHeader(ContentType)}");
        }
        text.Append($"\n  body: {FuzzText.Printable(Body)}");
        return text.ToString();
    }
}

/// <summary>
/// Requests for every route of the Dapr HTTP API (and paths none has): the route's method mostly, generated path
/// segments, query strings, headers and bodies of the route's shape or of none.
/// </summary>
internal static class HttpCases
{
    private const string TokenChars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    /// <summary>Headers HttpClient manages itself or that change the connection, not what a request carries.</summary>
    private static readonly HashSet<string> Reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Transfer-Encoding", "Connection", "Content-Type", "Expect", "Upgrade", "Keep-Alive",
        "Proxy-Connection", "TE", "Trailer", "dapr-api-token",
    };

    private static readonly Gen<string> Version = Gen.Frequency((8, Gen.Const("v1.0")), (3, Gen.Const("v1.0-alpha1")), (1, Gen.OneOf(Gen.Const("v2"), Gen.Const("V1.0"), Gen.Const(""))));

    private static readonly Gen<string> AnyMethod = Gen.Frequency(
        (6, Gen.OneOf(Gen.Const("GET"), Gen.Const("POST"), Gen.Const("PUT"), Gen.Const("DELETE"))),
        (2, Gen.OneOf(Gen.Const("PATCH"), Gen.Const("HEAD"), Gen.Const("OPTIONS"), Gen.Const("TRACE"))),
        (1, Gen.String[Gen.Char["ABCDEFGHIJKLMNOPQRSTUVWXYZ-_"], 1, 12]));

    /// <summary>A path segment as sent: a known name, an escaped arbitrary string, dot segments, broken escapes, or very long.</summary>
    private static Gen<string> Segment(params string[] known) => Gen.Frequency(
        (8, Gen.OneOf(known.Select(Gen.Const).ToArray())),
        (4, FuzzText.Any.Select(Escape)),
        (2, Gen.OneOf(Gen.Const(".."), Gen.Const("."), Gen.Const("%2F"), Gen.Const("a%2Fb"), Gen.Const("%2e%2e"), Gen.Const("%00"), Gen.Const("%zz"),
            Gen.Const("%C3"), Gen.Const("%"), Gen.Const("%u0041"), Gen.Const(";x=1"), Gen.Const("%5C..%5C"), Gen.Const("%252F"), Gen.Const("~"), Gen.Const("%20"), Gen.Const("a%7C%7Cb"))),
        (1, Gen.Frequency((4, Gen.Int[200, 2_000]), (1, Gen.Int[2_000, 9_000])).Select(n => new string('s', n))),
        (1, Gen.Const("")));

    private static readonly Gen<string> Key = Segment("k1", "k2", "k3", "bystander-probe", "big");
    private static readonly Gen<string> StoreName = Segment("statestore", "durable", "statestore", "durable", "nosuch");
    private static readonly Gen<string> PubsubName = Segment("pubsub", "pubsub", "pubsub", "nosuch");
    private static readonly Gen<string> Topic = Segment("fuzz", "fuzz-events", "bystander-orders", "deadletters").Array[1, 3].Select(s => string.Join('/', s));
    private static readonly Gen<string> AppId = Segment("attacker", "attacker", "bystander", "nosuch");
    private static readonly Gen<string> MethodPath = Segment("echo", "fail", "slow", "orders", "dapr/subscribe", "x").Array[1, 4].Select(s => string.Join('/', s));

    private static readonly Gen<string> QueryValue = FuzzText.Any.Select(Escape);

    private static Gen<string> Query(Gen<string> names) => Gen.Frequency(
        (5, Gen.Const("")),
        (5, Gen.Select(names, QueryValue).Array[1, 4].Select(pairs => "?" + string.Join('&', pairs.Select(p => $"{p.Item1}={p.Item2}")))),
        (1, Gen.OneOf(Gen.Const("?"), Gen.Const("?&&==&"), Gen.Const("?metadata.=x&metadata."), Gen.Const("?%zz=%zz"), Gen.Const("?metadata.rawPayload=true&metadata.rawPayload=false"),
            Gen.Const("?" + string.Join('&', Enumerable.Range(0, 500).Select(i => $"metadata.k{i}=v"))))));

    private static readonly Gen<string> MetadataQueryName = Gen.Frequency(
        (4, FuzzText.MetadataKey.Select(k => "metadata." + Escape(k))),
        (1, Gen.OneOf(Gen.Const("consistency"), Gen.Const("concurrency"), Gen.Const("key"))),
        (1, FuzzText.Any.Select(Escape)));

    private static readonly Gen<string> HeaderName = Gen.Frequency(
        (3, Gen.String[Gen.Char[TokenChars], 1, 24]),
        (2, Gen.OneOf(Gen.Const("traceparent"), Gen.Const("tracestate"), Gen.Const("If-Match"), Gen.Const("Accept"), Gen.Const("dapr-app-id"),
            Gen.Const("X-Forwarded-For"), Gen.Const("grpc-timeout"), Gen.Const("metadata.ttlInSeconds"), Gen.Const("Authorization"),
            Gen.Const("Cookie"), Gen.Const("Content-Encoding"), Gen.Const("Accept-Encoding"), Gen.Const("dapr-caller-app-id"), Gen.Const("Range"))))
        .Where(n => !Reserved.Contains(n));

    /// <summary>Header values a client can put on the wire: printable ASCII and tabs, or very long.</summary>
    private static readonly Gen<string> HeaderValue = Gen.Frequency(
        (12, Gen.String[Gen.Frequency((12, Gen.Char[' ', '~']), (1, Gen.Const('\t'))), 0, 60]),
        (1, Gen.OneOf(Gen.Const("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), Gen.Const("00-zz-zz-zz"), Gen.Const("*"), Gen.Const("W/\"1\""))),
        (1, Gen.Int[1_000, 12_000].Select(n => new string('h', n))));

    /// <summary>Header values with non-ASCII (Latin-1) bytes, which the HTTP server refuses before the runtime sees them.</summary>
    private static readonly Gen<string> NonAsciiHeaderValue =
        Gen.String[Gen.Frequency((6, Gen.Char[' ', '~']), (2, Gen.Char['\u0080', '\u00ff']), (1, Gen.Const('\t'))), 1, 60];

    private static readonly Gen<KeyValuePair<string, string>[]> Headers = Gen.Frequency(
        (6, Gen.Const(Array.Empty<KeyValuePair<string, string>>())),
        (8, Gen.Select(HeaderName, HeaderValue, (n, v) => new KeyValuePair<string, string>(n, v)).Array[1, 5]),
        (1, Gen.Select(HeaderName, NonAsciiHeaderValue, (n, v) => new KeyValuePair<string, string>(n, v)).Array[1, 2]));

    private static readonly Gen<string?> ContentType = Gen.Frequency<string?>(
        (4, Gen.Const<string?>("application/json")),
        (2, Gen.OneOf<string?>(Gen.Const(default(string?)), Gen.Const<string?>("text/plain"), Gen.Const<string?>("application/cloudevents+json"), Gen.Const<string?>("application/octet-stream"))),
        (1, Gen.OneOf<string?>(Gen.Const<string?>("application/json; charset=latin1"), Gen.Const<string?>("application/grpc"), Gen.Const<string?>(";;;"), Gen.Const<string?>("multipart/form-data; boundary="))),
        (1, Gen.String[Gen.Frequency((30, Gen.Char[' ', '~']), (1, Gen.Char['\u0080', '\u00ff'])), 0, 40].Select(s => (string?)s)));

    private static readonly Gen<string?> Token = Gen.Frequency<string?>(
        (96, Gen.Const<string?>(FuzzNode.AttackerToken)),
        (2, Gen.Const(default(string?))),
        (2, FuzzText.Any.Where(t => t != FuzzNode.BystanderToken).Select(t => (string?)new string(t.Where(c => c is >= ' ' and <= '~').ToArray()))));

    // ---- bodies of each route's shape

    private static readonly Gen<JsonNode?> KeyJson = Gen.Frequency(
        (5, Gen.OneOf(Gen.Const("k1"), Gen.Const("k2"), Gen.Const("k3"), Gen.Const("big")).Select(k => (JsonNode?)JsonValue.Create(k))),
        (3, FuzzText.Any.Select(k => (JsonNode?)JsonValue.Create(k))),
        (1, FuzzText.Json));

    private static readonly Gen<JsonNode?> Options = Obj(
        ("concurrency", Gen.OneOf(Gen.Const("first-write"), Gen.Const("last-write"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))),
        ("consistency", Gen.OneOf(Gen.Const("strong"), Gen.Const("eventual"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))));

    private static readonly Gen<JsonNode?> TtlMetadata = Gen.Frequency(
        (3, FuzzText.StringMapJson),
        (2, FuzzText.NumberText.Select(n => (JsonNode?)new JsonObject { ["ttlInSeconds"] = n })));

    private static readonly Gen<JsonNode?> SaveItem = Obj(
        ("key", KeyJson),
        ("value", FuzzText.Json),
        ("etag", Gen.OneOf(FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s)), FuzzText.NumberText.Select(n => JsonNode.Parse(n)))),
        ("metadata", TtlMetadata),
        ("options", Options));

    private static readonly Gen<JsonNode?> SaveBody = Gen.Frequency(
        (6, SaveItem.Array[0, 5].Select(JsonArrayOf)),
        (1, FuzzText.Json));

    private static readonly Gen<JsonNode?> BulkGetBody = Obj(
        ("keys", Gen.Frequency((8, KeyJson.Array[0, 20]), (1, KeyJson.Array[100, 200])).Select(JsonArrayOf)),
        ("parallelism", FuzzText.NumberText.Select(n => JsonNode.Parse(n))),
        ("metadata", FuzzText.StringMapJson));

    private static readonly Gen<JsonNode?> TransactionBody = Obj(
        ("operations", Obj(
            ("operation", Gen.Frequency((4, Gen.OneOf(Gen.Const("upsert"), Gen.Const("delete"))), (1, FuzzText.Any)).Select(s => (JsonNode?)JsonValue.Create(s))),
            ("request", Gen.Frequency((6, SaveItem), (1, FuzzText.Json)))).Array[0, 6].Select(JsonArrayOf)),
        ("metadata", FuzzText.StringMapJson));

    private static readonly Gen<JsonNode?> QueryBody = Obj(
        ("filter", Gen.Frequency((2, FuzzText.Json), (1, Gen.Const<JsonNode?>(() => JsonNode.Parse("""{"EQ":{"state":"CA"}}"""))))),
        ("sort", FuzzText.Json),
        ("page", Obj(("limit", FuzzText.NumberText.Select(n => JsonNode.Parse(n))), ("token", FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s))))));

    private static readonly Gen<JsonNode?> CloudEvent = Obj(
        ("specversion", Gen.OneOf(Gen.Const("1.0"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))),
        ("id", FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s))),
        ("source", Gen.OneOf(Gen.Const("bystander"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))),
        ("type", FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s))),
        ("datacontenttype", ContentType.Select(s => (JsonNode?)JsonValue.Create(s))),
        ("data", FuzzText.Json),
        ("data_base64", FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s))),
        ("traceparent", HeaderValue.Select(s => (JsonNode?)JsonValue.Create(s))));

    private static readonly Gen<JsonNode?> PublishBody = Gen.Frequency((3, FuzzText.Json), (2, CloudEvent));

    private static readonly Gen<JsonNode?> BulkPublishBody = Gen.Frequency(
        (6, Obj(
            ("entryId", Gen.OneOf(Gen.Const("1"), Gen.Const("2"), Gen.Const("3"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))),
            ("event", PublishBody),
            ("contentType", ContentType.Select(s => (JsonNode?)JsonValue.Create(s))),
            ("metadata", FuzzText.StringMapJson)).Array[0, 6].Select(JsonArrayOf)),
        (1, FuzzText.Json));

    private static readonly Gen<JsonNode?> BindingBody = Obj(
        ("data", FuzzText.Json),
        ("metadata", Gen.Frequency(
            (2, FuzzText.StringMapJson),
            (2, Gen.Select(MethodPath, HeaderName, HeaderValue, (path, name, value) => (JsonNode?)new JsonObject { ["path"] = path, [name] = value })))),
        ("operation", Gen.Frequency((4, Gen.OneOf(Gen.Const("create"), Gen.Const("get"), Gen.Const("post"), Gen.Const("delete"), Gen.Const("head"))), (1, FuzzText.Any))
            .Select(s => (JsonNode?)JsonValue.Create(s))));

    private static readonly Gen<JsonNode?> LockBody = Obj(
        ("resourceId", KeyJson),
        ("lockOwner", Gen.OneOf(Gen.Const("owner"), FuzzText.Any).Select(s => (JsonNode?)JsonValue.Create(s))),
        ("expiryInSeconds", Gen.Frequency((3, FuzzText.NumberText.Select(n => JsonNode.Parse(n))), (1, FuzzText.Json))));

    private static readonly Gen<JsonNode?> TextBody = FuzzText.Any.Select(s => (JsonNode?)JsonValue.Create(s));

    private static readonly Gen<string?> InvokeHeaderAppId = Gen.Frequency(
        (4, Gen.OneOf(Gen.Const<string?>("attacker"), Gen.Const<string?>("bystander"))),
        (1, Gen.Const<string?>("nosuch")),
        (1, HeaderValue.Select(v => (string?)v)));

    /// <summary>Every route of the HTTP API, and paths no route has, each with its weight in the run.</summary>
    public static readonly Gen<HttpCase> All = Gen.Frequency(
        (1, Route("healthz", Gen.Const("GET"), Version.Select(v => $"/{v}/healthz"), null)),
        (1, Route("healthz.outbound", Gen.Const("GET"), Version.Select(v => $"/{v}/healthz/outbound"), null)),
        (6, Route("state.get", Gen.Const("GET"), Gen.Select(Version, StoreName, Key, (v, s, k) => $"/{v}/state/{s}/{k}"), null, Query(MetadataQueryName))),
        (8, Route("state.save", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, StoreName, (v, s) => $"/{v}/state/{s}"), SaveBody, Query(MetadataQueryName))),
        (4, Route("state.delete", Gen.Const("DELETE"), Gen.Select(Version, StoreName, Key, (v, s, k) => $"/{v}/state/{s}/{k}"), null, Query(MetadataQueryName))),
        (5, Route("state.bulk", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, StoreName, (v, s) => $"/{v}/state/{s}/bulk"), BulkGetBody)),
        (5, Route("state.transaction", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, StoreName, (v, s) => $"/{v}/state/{s}/transaction"), TransactionBody)),
        (2, Route("state.query", Gen.Const("POST"), Gen.Select(Version, StoreName, (v, s) => $"/{v}/state/{s}/query"), QueryBody)),
        (6, Route("publish", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, PubsubName, Topic, (v, p, t) => $"/{v}/publish/{p}/{t}"), PublishBody, Query(MetadataQueryName))),
        (4, Route("publish.bulk", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, PubsubName, Topic, (v, p, t) => $"/{v}/publish/bulk/{p}/{t}"), BulkPublishBody, Query(MetadataQueryName))),
        (6, Route("invoke", AnyMethod, Gen.Select(AppId, MethodPath, (a, m) => $"/v1.0/invoke/{a}/method/{m}"), FuzzText.Json, Query(FuzzText.Any.Select(Escape)))),
        (3, Route("invoke.header", AnyMethod, MethodPath.Select(m => "/" + m), FuzzText.Json, Query(FuzzText.Any.Select(Escape)), invokeHeader: true)),
        (5, Route("bindings", Gen.OneOf(Gen.Const("POST"), Gen.Const("PUT")), Gen.Select(Version, Segment("appbinding", "appbinding", "nosuch"), (v, b) => $"/{v}/bindings/{b}"), BindingBody, Query(MetadataQueryName))),
        (3, Route("secrets", Gen.Const("GET"), Gen.Select(Version, Segment("envsecrets", "envsecrets", "nosuch"), Segment("TOKEN", "OTHER", "PATH", "HOME"), (v, s, k) => $"/{v}/secrets/{s}/{k}"), null, Query(MetadataQueryName))),
        (2, Route("secrets.bulk", Gen.Const("GET"), Gen.Select(Version, Segment("envsecrets", "envsecrets", "nosuch"), (v, s) => $"/{v}/secrets/{s}/bulk"), null, Query(MetadataQueryName))),
        (3, Route("configuration", Gen.Const("GET"), Gen.Select(Version, Segment("appconfig", "appconfig", "nosuch"), (v, s) => $"/{v}/configuration/{s}"), null,
            Query(Gen.Frequency((4, Gen.Const("key")), (1, MetadataQueryName))))),
        (1, Route("configuration.subscribe", Gen.Const("GET"), Gen.Select(Version, Segment("appconfig", "nosuch"), (v, s) => $"/{v}/configuration/{s}/subscribe"), null, Query(Gen.Const("key")))),
        (3, Route("lock", Gen.Const("POST"), Segment("lockstore", "lockstore", "nosuch").Select(s => $"/v1.0-alpha1/lock/{s}"), LockBody)),
        (2, Route("unlock", Gen.Const("POST"), Segment("lockstore", "lockstore", "nosuch").Select(s => $"/v1.0-alpha1/unlock/{s}"), LockBody)),
        (2, Route("metadata.get", Gen.Const("GET"), Version.Select(v => $"/{v}/metadata"), null)),
        (2, Route("metadata.put", Gen.Const("PUT"), Gen.Select(Version, Segment("attr", "attr2"), (v, k) => $"/{v}/metadata/{k}"), TextBody)),
        (1, Route("shutdown", Gen.Const("POST"), Version.Select(v => $"/{v}/shutdown"), null)),
        (3, Route("unknown", AnyMethod, Gen.Select(Version, Segment("state", "publish", "invoke", "actors", "workflows").Array[0, 5], (v, s) => $"/{v}/" + string.Join('/', s)), FuzzText.Json, Query(MetadataQueryName))));

    /// <summary>
    /// A route's requests: its method (or, one time in eight, any other), its path, a query, headers, a token, and a
    /// body of its shape (or, through <see cref="FuzzText.Body"/>, of none).
    /// </summary>
    private static Gen<HttpCase> Route(string route, Gen<string> method, Gen<string> path, Gen<JsonNode?>? body, Gen<string>? query = null, bool invokeHeader = false) =>
        Gen.Select(
            Gen.Frequency((7, method), (1, AnyMethod)),
            path,
            query ?? Gen.Frequency((6, Gen.Const("")), (1, Query(MetadataQueryName))),
            Headers,
            body is null ? Gen.Frequency((6, Gen.Const(Array.Empty<byte>())), (1, FuzzText.Body(FuzzText.Json))) : FuzzText.Body(body),
            ContentType,
            Token,
            invokeHeader ? InvokeHeaderAppId : Gen.Const(default(string?)),
            (m, p, q, h, b, ct, token, appId) =>
            {
                KeyValuePair<string, string>[] headers = appId is null ? h : [new("dapr-app-id", appId), .. h];
                return new HttpCase(route, m, p + q, headers, b, ct, token);
            });

    /// <summary>Percent-encodes everything but unreserved ASCII, from the UTF-8 bytes (lone surrogates become U+FFFD).</summary>
    public static string Escape(string text)
    {
        var result = new StringBuilder();
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            if (b is >= (byte)'a' and <= (byte)'z' or >= (byte)'A' and <= (byte)'Z' or >= (byte)'0' and <= (byte)'9' or (byte)'-' or (byte)'_' or (byte)'.' or (byte)'~')
            {
                result.Append((char)b);
            }
            else
            {
                result.Append($"%{b:X2}");
            }
        }
        return result.ToString();
    }

    private static JsonNode? JsonArrayOf(JsonNode?[] items) => new JsonArray(items.Select(i => i?.DeepClone()).ToArray());

    /// <summary>A JSON object whose fields are each present nine times in ten.</summary>
    private static Gen<JsonNode?> Obj(params (string Name, Gen<JsonNode?> Value)[] fields)
    {
        Gen<(string, JsonNode?)[]> result = Gen.Const(System.Array.Empty<(string, JsonNode?)>());
        foreach (var (name, value) in fields)
        {
            result = from so in result
                     from present in Gen.Int[0, 9]
                     from v in value
                     select present < 9 ? [.. so, (name, v)] : so;
        }
        return result.Select(properties => (JsonNode?)FuzzText.Object(properties));
    }
}
