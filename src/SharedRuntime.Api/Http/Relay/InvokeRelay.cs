using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Polly;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Metrics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Http.Relay;

/// <summary>What the runtime's drain needs to know of relayed calls, and tells the relay.</summary>
internal interface IRequestDrain
{
    /// <summary>True once the listeners are closed: a connection closes after its answer.</summary>
    bool ClosingConnections { get; }

    void RequestStarted();

    void RequestFinished();
}

/// <summary>
/// Service invocation's short path on the Dapr HTTP port. A connection's requests are read straight off its socket;
/// an invocation of a plain-HTTP app that every check lets through at once is written to one of the target channel's
/// own connections and the app's answer copied back, on the socket's own thread, without the HTTP server's request
/// pipeline or the HTTP client. Everything else, and every call that would be refused, waited for or retried, goes
/// to the HTTP API as before, which answers it the same way it always did.
/// </summary>
/// <remarks>
/// A call it takes passes, in the HTTP API's order and with the same effects: the caller's token (its pods'
/// addresses, when bound), its body limit, its bulkhead and rate limit, the target's access control, health and
/// breaker, and a slot in the target's channel on the caller's line. It is counted, logged and drained as any other
/// request. It is not taken (and goes the long way, where it is answered or refused) when the tenant is over its fair share
/// of a saturated runtime, it has an API policy, the call has a resiliency policy, tracing is on, the target is an
/// HTTPEndpoint, an app reached over gRPC or TLS, or anything would have to wait. An app reached over h2c gets the call
/// on a stream of one of its HTTP/2 connections, each carrying one call at a time.
/// </remarks>
internal sealed class InvokeRelay(
    RuntimeConfiguration configuration,
    AppChannels channels,
    ResiliencyPolicies policies,
    RuntimeMetrics metrics,
    TenantCpuMetrics tenantCpu,
    SubscriptionDiscovery discovery,
    TracingOptions tracing,
    TimeProvider time,
    ILogger<InvokeRelay> logger,
    InvokeRelayOptions options,
    ExternalEndpoints? external = null,
    AppHealthProbes? health = null,
    IRequestDrain? drain = null)
{
    /// <summary>Bytes a relayed connection holds for its requests: a request (head and body) larger goes the long way.</summary>
    public const int BufferSize = 16 * 1024;

    /// <summary>A connection the relay keeps is closed after this long without a request, as the HTTP server's are.</summary>
    public static readonly TimeSpan KeepAliveTimeout = TimeSpan.FromSeconds(130);

    /// <summary>A request whose head and body are not all there this long after its first byte closes its connection.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How often connections are looked over: idle ones past their time closed, slow calls' client watches started again
    /// where they ended on a request sent ahead.
    /// </summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromMilliseconds(100);

    /// <summary>
    /// A call the app has not answered after this long whose client watch ended (on a request the client sent ahead) is
    /// watched again: a client that went away ends the call.
    /// </summary>
    public static readonly TimeSpan ClientWatchAfter = TimeSpan.FromSeconds(1);

    /// <summary>Longest wait, when the server stops, for relayed calls in flight.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(30);

    private const string ApiName = "invoke";

    private long _relayed;

    /// <summary>Calls relayed since start.</summary>
    public long Relayed => Interlocked.Read(ref _relayed);

    public bool Enabled => options.Enabled;

    public TimeProvider Time => time;

    public ILogger Logger => logger;

    public bool Closing => drain?.ClosingConnections ?? false;

    /// <summary>
    /// The checks of a call that change nothing: who calls, what it calls and whether the short path may take it.
    /// Null when it goes the long way.
    /// </summary>
    public RelayCall? Resolve(RequestHead head, ReadOnlySpan<byte> buffer, System.Net.IPAddress? remote, LastToken tokens, RelayRoute? lastRoute, out RelayRoute? route)
    {
        route = null;
        if (tracing.Exporting)
        {
            return null;
        }
        var tokenBytes = buffer[head.Token];
        if (tokenBytes.Length > 512)
        {
            return null;
        }
        var snapshot = configuration.Current;
        TenantContext? known;
        if (ReferenceEquals(tokens.Snapshot, snapshot) && CryptographicOperations.FixedTimeEquals(tokens.Token, tokenBytes))
        {
            known = tokens.Known; // the token this connection sent last, under the same configuration
        }
        else
        {
            Span<char> token = stackalloc char[tokenBytes.Length];
            Encoding.ASCII.GetChars(tokenBytes, token);
            known = snapshot.FindByToken(token);
            tokens.Remember(tokenBytes, snapshot, known);
        }
        var tenant = configuration.Pods.Admit(known, remote);
        if (tenant is null || tenant.Policy.Api is not null || head.ContentLength > tenant.Limits.MaxRequestBodyBytes)
        {
            return null;
        }
        route = lastRoute is not null && buffer[head.Target].SequenceEqual(lastRoute.Target) ? lastRoute : RelayRoute.Parse(head, buffer);
        if (route is null || external?.Find(tenant, route.AppId) is not null)
        {
            return null;
        }
        var target = channels.FindTarget(ResourceNamespace.Target(route.AppId, tenant.Namespace));
        if (target?.Channel is not { } channel || channel.RelayConnections is not { } connections ||
            policies.ForApp(tenant.AppId, target.AppId) != ResiliencePipeline<AppCallResult>.Empty)
        {
            return null;
        }
        var verb = RelayRoute.VerbOf(buffer[head.Verb]);
        if (target.AccessControl is { } acl && !acl.IsAllowed(ResourceNamespace.Key(tenant.Config.AppId, tenant.Namespace), route.Path.Plain, verb))
        {
            return null;
        }
        if (health?.Refusal(target.AppId) is not null)
        {
            return null;
        }
        return new RelayCall(tenant, target.AppId, channel, connections, route, verb);
    }

    /// <summary>
    /// Takes what the call holds while it runs, all or nothing: a slot of the caller's bulkhead, a slot in the target's
    /// channel, the breaker's permission, a turn within the caller's fair share while the runtime is saturated (counted
    /// on <paramref name="turn"/>, the connection's) and a token of the caller's rate limit. False, with nothing taken, when any is
    /// not free now: the call goes the long way, which waits or refuses as it should.
    /// </summary>
    public bool TryAdmit(RelayCall call, Admission.ConnectionTurn? turn)
    {
        var admission = call.Caller.Admission;
        if (!admission.Bulkhead.TryEnter())
        {
            return false;
        }
        if (!call.Channel.Calls.TryEnterNow())
        {
            admission.Exit();
            return false;
        }
        if (!call.Channel.TryBeginRelay(out var generation))
        {
            call.Channel.Calls.Exit();
            admission.Exit();
            return false;
        }
        if (!admission.Share.TryPassAtOnce(turn) || !admission.TryTakeToken(out _))
        {
            call.Channel.EndRelay(generation, appFailed: null);
            call.Channel.Calls.Exit();
            admission.Exit();
            return false;
        }
        call.Generation = generation;
        call.Start = Stopwatch.GetTimestamp();
        discovery.Seen(call.Caller, healthCheck: false);
        metrics.RequestStarted(call.Caller.AppId);
        call.Cpu = tenantCpu.Start(call.Caller.AppId);
        drain?.RequestStarted();
        Interlocked.Increment(ref _relayed);
        return true;
    }

    /// <summary>
    /// The app answered (or failed to: <paramref name="appFailed"/>; null when the caller went away first): its channel
    /// slot and breaker are done with.
    /// </summary>
    public void Answered(RelayCall call, bool? appFailed)
    {
        if (call.ChannelHeld)
        {
            call.ChannelHeld = false;
            call.Channel.EndRelay(call.Generation, appFailed);
            call.Channel.Calls.Exit();
        }
    }

    /// <summary>The call is over: what it held is given back and it is counted with <paramref name="status"/>.</summary>
    public void Finished(RelayCall call, int status)
    {
        Answered(call, appFailed: false);
        call.Caller.Admission.Exit();
        metrics.RequestFinished(call.Caller.AppId, ApiName, status, call.Start);
        tenantCpu.Stop(call.Cpu);
        drain?.RequestFinished();
    }

    /// <summary>The app failed the call: logged as the HTTP API logs it, and the caller's Dapr error.</summary>
    public byte[] Failure(RelayCall call, string problem)
    {
        var error = new DaprApiException(500, "ERR_DIRECT_INVOKE", $"failed to invoke, id: {call.TargetAppId}, err: {problem}");
        InvocationLog.Failed(logger, call.Caller.AppId, call.TargetAppId, call.Route.Path.Escaped, problem);
        ApiLog.ApiError(logger, call.Caller.AppId, ApiName, error.HttpStatus, error.ErrorCode, error.Message);
        return DaprErrorWriter.Serialize(error);
    }

    /// <summary>
    /// Writes the request the app receives: the caller's, to the method path below the app's URL, less the hop-by-hop
    /// and runtime-owned headers, with what the runtime says itself (as <see cref="ServiceInvocation"/> does). False
    /// when it does not fit in <paramref name="into"/>.
    /// </summary>
    public static bool TryWriteRequest(RelayCall call, RequestHead head, ReadOnlySpan<byte> buffer, string clientAddress, Span<byte> into, out int written)
    {
        var writer = new HeadWriter(into);
        writer.Write(buffer[head.Verb]);
        writer.Write(" "u8);
        writer.Write(call.Connections.BasePath);
        writer.Write("/"u8);
        writer.WriteAscii(call.Route.Path.Escaped);
        writer.Write(buffer[head.Query]);
        writer.Write(" HTTP/1.1\r\n"u8);
        writer.Write(call.Connections.HostLine);
        if (head.ContentLength > 0 || (!head.HasContentLength && RelayRoute.MustHaveBody(call.Verb)))
        {
            writer.Write("Content-Length: "u8);
            writer.WriteNumber(head.ContentLength);
            writer.Write("\r\n"u8);
        }
        for (var i = 0; i < head.KeptCount; i++)
        {
            writer.Write(buffer[head.KeptLine(i)]);
        }
        writer.Write("dapr-caller-app-id: "u8);
        writer.WriteAscii(call.Caller.Config.AppId);
        writer.Write("\r\ndapr-callee-app-id: "u8);
        writer.WriteAscii(call.Channel.AppId);
        writer.Write("\r\ntraceparent: "u8);
        var traceParent = buffer[head.TraceParent];
        if (traceParent.Length == 55 && ActivityContext.TryParse(Encoding.ASCII.GetString(traceParent), null, out _))
        {
            writer.Write(traceParent);
        }
        else
        {
            writer.WriteNewTraceParent();
        }
        writer.Write("\r\nX-Forwarded-For: "u8);
        writer.WriteAscii(clientAddress);
        writer.Write("\r\nX-Forwarded-Host: "u8);
        writer.Write(buffer[head.Host]);
        writer.Write("\r\nX-Forwarded-Proto: http\r\n"u8);
        if (call.Channel.Config.AppApiToken is { } appToken)
        {
            writer.Write("dapr-api-token: "u8);
            writer.WriteUtf8(appToken);
            writer.Write("\r\n"u8);
        }
        writer.Write("\r\n"u8);
        writer.Write(buffer.Slice(head.Length, head.ContentLength));
        written = writer.Length;
        return !writer.Overflowed;
    }
}

/// <summary>
/// The token a connection sent last and the tenant it named, under one configuration snapshot: a connection's requests
/// usually carry the same token, which is then looked up once per snapshot rather than hashed on every request.
/// </summary>
internal sealed class LastToken
{
    public byte[] Token { get; private set; } = [];

    public RuntimeSnapshot? Snapshot { get; private set; }

    public TenantContext? Known { get; private set; }

    public void Remember(ReadOnlySpan<byte> token, RuntimeSnapshot snapshot, TenantContext? known)
    {
        Token = token.ToArray();
        Snapshot = snapshot;
        Known = known;
    }
}

/// <summary>Whether the runtime's Dapr HTTP port relays invocations itself (<c>--invoke-relay</c>).</summary>
internal sealed record InvokeRelayOptions(bool Enabled);

/// <summary>One relayed call: who calls what, and what it holds while it runs.</summary>
internal sealed class RelayCall(TenantContext caller, string targetAppId, AppChannel.AppChannel channel, AppConnections connections, RelayRoute route, string verb)
{
    public TenantContext Caller { get; } = caller;

    public string TargetAppId { get; } = targetAppId;

    public AppChannel.AppChannel Channel { get; } = channel;

    public AppConnections Connections { get; } = connections;

    public RelayRoute Route { get; } = route;

    public string Verb { get; } = verb;

    public long Generation { get; set; }

    public long Start { get; set; }

    public TenantCpuScope? Cpu { get; set; }

    /// <summary>True until the app answered: the channel slot and breaker permission are still held.</summary>
    public bool ChannelHeld { get; set; } = true;
}

/// <summary>
/// A request target the relay takes, parsed once: a connection that sends the same target again (as clients of one
/// method do) reuses it.
/// </summary>
internal sealed class RelayRoute
{
    private RelayRoute(byte[] target, string appId, MethodPath path)
    {
        Target = target;
        AppId = appId;
        Path = path;
    }

    public byte[] Target { get; }

    public string AppId { get; }

    public MethodPath Path { get; }

    public static RelayRoute? Parse(RequestHead head, ReadOnlySpan<byte> buffer)
    {
        var method = Encoding.ASCII.GetString(buffer[head.Method]);
        if (!MethodPath.TryParse(method, MethodPathForm.Decoded, out var path, out _) ||
            path.Escaped.Length + (head.Query.End.Value - head.Query.Start.Value) > ServiceInvocation.MaxTargetLength)
        {
            return null;
        }
        return new RelayRoute(buffer[head.Target].ToArray(), Encoding.ASCII.GetString(buffer[head.AppId]), path);
    }

    /// <summary>A common verb's shared string, else a new one.</summary>
    public static string VerbOf(ReadOnlySpan<byte> verb) => verb switch
    {
        [(byte)'G', (byte)'E', (byte)'T'] => "GET",
        [(byte)'P', (byte)'O', (byte)'S', (byte)'T'] => "POST",
        [(byte)'P', (byte)'U', (byte)'T'] => "PUT",
        [(byte)'D', (byte)'E', (byte)'L', (byte)'E', (byte)'T', (byte)'E'] => "DELETE",
        [(byte)'P', (byte)'A', (byte)'T', (byte)'C', (byte)'H'] => "PATCH",
        [(byte)'H', (byte)'E', (byte)'A', (byte)'D'] => "HEAD",
        [(byte)'O', (byte)'P', (byte)'T', (byte)'I', (byte)'O', (byte)'N', (byte)'S'] => "OPTIONS",
        _ => Encoding.ASCII.GetString(verb),
    };

    /// <summary>Verbs an HTTP client sends <c>Content-Length: 0</c> for when there is no body.</summary>
    public static bool MustHaveBody(string verb) => verb is "POST" or "PUT" or "PATCH";
}

/// <summary>Writes an HTTP head into a fixed span; past its end it only notes the overflow.</summary>
internal ref struct HeadWriter(Span<byte> into)
{
    private readonly Span<byte> _into = into;

    public int Length { get; private set; }

    public bool Overflowed { get; private set; }

    public void Write(scoped ReadOnlySpan<byte> bytes)
    {
        if (Overflowed || bytes.Length > _into.Length - Length)
        {
            Overflowed = true;
            return;
        }
        bytes.CopyTo(_into[Length..]);
        Length += bytes.Length;
    }

    public void WriteAscii(string text)
    {
        if (Overflowed || text.Length > _into.Length - Length)
        {
            Overflowed = true;
            return;
        }
        Length += Encoding.ASCII.GetBytes(text, _into[Length..]);
    }

    public void WriteUtf8(string text)
    {
        if (Overflowed || Encoding.UTF8.GetByteCount(text) > _into.Length - Length)
        {
            Overflowed = true;
            return;
        }
        Length += Encoding.UTF8.GetBytes(text, _into[Length..]);
    }

    public void WriteNumber(long value)
    {
        if (Overflowed || !System.Buffers.Text.Utf8Formatter.TryFormat(value, _into[Length..], out var written))
        {
            Overflowed = true;
            return;
        }
        Length += written;
    }

    /// <summary>How many digits <see cref="WriteHex"/> writes for <paramref name="value"/>.</summary>
    public static int HexLength(long value)
    {
        var digits = 1;
        while ((value >>= 4) != 0)
        {
            digits++;
        }
        return digits;
    }

    public void WriteHex(long value)
    {
        if (Overflowed || !System.Buffers.Text.Utf8Formatter.TryFormat(value, _into[Length..], out var written, new System.Buffers.StandardFormat('x')))
        {
            Overflowed = true;
            return;
        }
        Length += written;
    }

    /// <summary>A new W3C trace parent: version 00, a random trace and span, sampled.</summary>
    public void WriteNewTraceParent()
    {
        if (Overflowed || _into.Length - Length < 55)
        {
            Overflowed = true;
            return;
        }
        // Random ids as the tracing library makes them (not secrets: a fast generator), written as hex directly.
        Span<byte> id = stackalloc byte[24];
        Random.Shared.NextBytes(id);
        var text = _into.Slice(Length, 55);
        "00-"u8.CopyTo(text);
        Convert.TryToHexStringLower(id[..16], text[3..35], out _);
        text[35] = (byte)'-';
        Convert.TryToHexStringLower(id[16..], text[36..52], out _);
        "-01"u8.CopyTo(text[52..]);
        Length += 55;
    }
}
