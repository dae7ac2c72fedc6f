using System.Collections.Frozen;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Http;
using SharedRuntime.Tenancy;

namespace SharedRuntime.AppChannel;

/// <summary>
/// Where an invocation goes when it names no app: an HTTPEndpoint the caller may see (by name, first, as Dapr's order
/// has it), or a URL given in place of the app-id (<c>http://host:port</c>, also percent-encoded). Each caller has its
/// own channel to each destination (connections, call slots and breaker), so a slow or failing service costs only the
/// tenants that call it, each its own slots, and a failure it causes never opens another tenant's breaker.
/// </summary>
internal sealed class ExternalEndpoints : IDisposable
{
    /// <summary>Destinations one caller may hold channels to at once; another is refused until a reload drops some.</summary>
    public const int MaxDestinationsPerCaller = 32;

    /// <summary>The bounds of one caller's channel to one destination.</summary>
    public static AppChannelConfig ChannelConfig { get; } = new()
    {
        MaxConcurrency = 16,
        MaxQueue = 64,
        Timeout = TimeSpan.FromSeconds(60),
        DiscoverSubscriptions = false,
    };

    private readonly InvokeAllowlist _allowlist;
    private readonly ListenerPorts? _ports;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Lock _updating = new();
    private readonly Dictionary<(string Caller, string Key), AppChannel> _channels = [];
    private readonly Dictionary<string, int> _perCaller = new(StringComparer.Ordinal);
    private volatile Table _table = Table.Empty;
    private bool _disposed;

    public ExternalEndpoints(RuntimeConfiguration configuration, InvokeAllowlist allowlist, TimeProvider time, ILogger<ExternalEndpoints> logger, ListenerPorts? ports = null)
    {
        _allowlist = allowlist;
        _ports = ports;
        _time = time;
        _logger = logger;
        Update(configuration.Current);
        configuration.Changed += Update;
    }

    /// <summary>
    /// The destination <paramref name="target"/> names for <paramref name="caller"/>: an HTTPEndpoint it may see, a
    /// URL, or null for an app-id. A destination the allowlist refuses comes back with its <see cref="ExternalDestination.Refusal"/>.
    /// Throws <see cref="BuildingBlocks.DaprApiException"/> for a URL that cannot be one.
    /// </summary>
    public ExternalDestination? Find(TenantContext caller, string target)
    {
        var table = _table;
        if (table.Endpoints.TryGetValue(ResourceNamespace.Key(target, caller.Namespace), out var endpoint) &&
            endpoint.Config.IsVisibleTo(caller.Config.AppId, caller.Namespace))
        {
            return endpoint.Destination;
        }
        if (!LooksLikeUrl(target))
        {
            return null;
        }
        var text = target.Contains('%', StringComparison.Ordinal) ? Uri.UnescapeDataString(target) : target;
        if (!HttpEndpointParser.TryParseBaseUrl(text, out var url, out var problem))
        {
            throw new BuildingBlocks.DaprApiException(400, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {target}: the URL {problem}");
        }
        var origin = url.GetLeftPart(UriPartial.Path).TrimEnd('/');
        return new ExternalDestination(origin, url, origin, [], "url:" + origin, Refusal(table, url, "the URL"));
    }

    /// <summary>The names of the HTTPEndpoints <paramref name="caller"/> may invoke, for the metadata API.</summary>
    public IReadOnlyList<string> VisibleTo(TenantContext caller) =>
        [.. _table.Endpoints.Values.Where(e => e.Config.IsVisibleTo(caller.Config.AppId, caller.Namespace)).Select(e => e.Config.Name).Order(StringComparer.Ordinal)];

    /// <summary>Whether <paramref name="target"/> is a URL rather than an app-id (no app-id has ':').</summary>
    public static bool LooksLikeUrl(string target) =>
        target.StartsWith("http:", StringComparison.OrdinalIgnoreCase) || target.StartsWith("https:", StringComparison.OrdinalIgnoreCase) ||
        target.StartsWith("http%3A", StringComparison.OrdinalIgnoreCase) || target.StartsWith("https%3A", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// <paramref name="caller"/>'s channel to <paramref name="destination"/>, made on first use; null when the caller
    /// already holds <see cref="MaxDestinationsPerCaller"/> channels.
    /// </summary>
    public AppChannel? ChannelFor(TenantContext caller, ExternalDestination destination)
    {
        lock (_updating)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key = (caller.AppId, destination.ChannelKey);
            if (_channels.TryGetValue(key, out var channel))
            {
                return channel;
            }
            var count = _perCaller.GetValueOrDefault(caller.AppId);
            if (count >= MaxDestinationsPerCaller)
            {
                return null;
            }
            channel = new AppChannel(destination.Name, ChannelConfig, destination.BaseUrl, AppProtocol.Http, CreateInvoker(), _time);
            _channels[key] = channel;
            _perCaller[caller.AppId] = count + 1;
            return channel;
        }
    }

    private void Update(RuntimeSnapshot snapshot)
    {
        var appOrigins = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var tenant in snapshot.Tenants.Values)
        {
            if (tenant.Config.AppEndpoint is { } endpoint && Uri.TryCreate(endpoint, UriKind.Absolute, out var uri))
            {
                appOrigins.Add(OriginKey(uri));
            }
        }
        var table = new Table(FrozenDictionary<string, CompiledEndpoint>.Empty, appOrigins.ToFrozenSet(StringComparer.OrdinalIgnoreCase));
        var endpoints = new Dictionary<string, CompiledEndpoint>(StringComparer.Ordinal);
        foreach (var config in snapshot.Resources.HttpEndpoints)
        {
            var refusal = Refusal(table, config.BaseUrl, $"HTTPEndpoint {config.Name}'s baseUrl");
            if (refusal is not null)
            {
                InvocationLog.EndpointRefused(_logger, config.Source, refusal);
            }
            var prefix = config.BaseUrl.GetLeftPart(UriPartial.Path).TrimEnd('/');
            endpoints[ResourceNamespace.Key(config.Name, config.Namespace)] = new CompiledEndpoint(config,
                new ExternalDestination(config.Name, config.BaseUrl, prefix, config.Headers, $"endpoint:{ResourceNamespace.Key(config.Name, config.Namespace)} {prefix}", refusal));
        }
        table = table with { Endpoints = endpoints.ToFrozenDictionary(StringComparer.Ordinal) };
        var retired = new List<AppChannel>();
        lock (_updating)
        {
            _table = table;
            var live = endpoints.Values.Select(e => e.Destination.ChannelKey).ToHashSet(StringComparer.Ordinal);
            foreach (var (key, channel) in _channels.ToList())
            {
                if (!snapshot.Tenants.ContainsKey(key.Caller) || key.Key.StartsWith("endpoint:", StringComparison.Ordinal) && !live.Contains(key.Key))
                {
                    _channels.Remove(key);
                    _perCaller[key.Caller]--;
                    retired.Add(channel);
                }
            }
            foreach (var caller in _perCaller.Where(p => p.Value == 0).Select(p => p.Key).ToList())
            {
                _perCaller.Remove(caller);
            }
        }
        foreach (var channel in retired)
        {
            channel.Retire();
        }
    }

    /// <summary>
    /// Why invocation may not go to <paramref name="url"/>, or null: its host is not allowlisted, it is a link-local
    /// address, one of this runtime's own ports, or a tenant's app (which is invoked by its app-id, under its access control).
    /// </summary>
    private string? Refusal(Table table, Uri url, string what)
    {
        var host = url.IdnHost;
        if (IPAddress.TryParse(host.Trim('[', ']'), out var address) && InvokeAllowlist.IsForbiddenAddress(address))
        {
            return $"{what} names {host}, a link-local or unspecified address, which is never invoked";
        }
        if (_ports is { } ports && IsLoopback(host) && (url.Port == ports.DaprHttp || url.Port == ports.DaprGrpc || url.Port == ports.Metrics))
        {
            return $"{what} names one of the runtime's own ports";
        }
        if (table.AppOrigins.Contains(OriginKey(url)))
        {
            return $"{what} names a tenant's app; invoke it by its app-id";
        }
        if (!_allowlist.Allows(host, url.Port))
        {
            return _allowlist.IsEmpty
                ? $"{what} names host {host}:{url.Port}, and this runtime allows no invocation outside its apps (--allowed-invoke-hosts is empty)"
                : $"{what} names host {host}:{url.Port}, which --allowed-invoke-hosts does not allow";
        }
        return null;
    }

    private static string OriginKey(Uri uri) => $"{(IsLoopback(uri.IdnHost) ? "loopback" : uri.IdnHost)}:{uri.Port}";

    private static bool IsLoopback(string host) =>
        host.Equals("localhost", StringComparison.OrdinalIgnoreCase) ||
        IPAddress.TryParse(host.Trim('[', ']'), out var address) && (IPAddress.IsLoopback(address) || address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any));

    /// <summary>
    /// One caller's connections to one destination, never to a link-local address even when a name resolves to one
    /// (a DNS answer cannot lead a call to the metadata service).
    /// </summary>
    private static HttpMessageInvoker CreateInvoker()
    {
        var handler = AppChannel.ForwardingHandler(ChannelConfig.MaxConcurrency);
        handler.MaxResponseHeadersLength = 64; // KiB, as the app channel's default
        handler.ConnectCallback = ConnectAsync;
        return new(handler, disposeHandler: true);
    }

    private static async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host.Trim('[', ']'), out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
        var allowed = addresses.Where(a => !InvokeAllowlist.IsForbiddenAddress(a)).ToArray();
        if (allowed.Length == 0)
        {
            throw new HttpRequestException(HttpRequestError.ConnectionError, $"{host} resolves only to link-local or unspecified addresses, which are never invoked");
        }
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        lock (_updating)
        {
            _disposed = true;
            foreach (var channel in _channels.Values)
            {
                channel.Dispose();
            }
            _channels.Clear();
        }
    }

    private sealed record CompiledEndpoint(HttpEndpointConfig Config, ExternalDestination Destination);

    private sealed record Table(FrozenDictionary<string, CompiledEndpoint> Endpoints, FrozenSet<string> AppOrigins)
    {
        public static Table Empty { get; } = new(FrozenDictionary<string, CompiledEndpoint>.Empty, FrozenSet<string>.Empty);
    }
}

/// <summary>
/// A service outside the runtime as one call reaches it: its name (the HTTPEndpoint's, or the URL's origin), its base
/// URL, the prefix its method paths are appended to, the headers the resource adds, the key of its channels, and why
/// it may not be invoked (null when it may).
/// </summary>
internal sealed record ExternalDestination(string Name, Uri BaseUrl, string Prefix, IReadOnlyList<KeyValuePair<string, string>> Headers, string ChannelKey, string? Refusal);
