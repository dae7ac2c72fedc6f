using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using SharedRuntime.Kubernetes.Watching;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// Posts a core/v1 Event on a Tenant for each <see cref="TenantNotice"/>, so <c>kubectl describe tenant</c> shows why
/// it is refused or clamped. At most one Event per change per node: a notice is posted once per Tenant
/// resourceVersion and reason, under a name made from them and the node, so the API server refuses a second one (409)
/// even after a restart. Posting runs off the reload path, through a bounded queue; a failure is logged, never retried.
/// </summary>
internal sealed class TenantEventRecorder : IAsyncDisposable
{
    /// <summary>Notices waiting to be posted; more are dropped (the next change notices again).</summary>
    public const int MaxPending = 256;

    /// <summary>The API server's limit on an Event's message.</summary>
    public const int MaxMessageLength = 1024;

    private readonly KubernetesApiClient _api;
    private readonly string _node;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Channel<TenantNotice> _pending = Channel.CreateBounded<TenantNotice>(new BoundedChannelOptions(MaxPending) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _posting;
    private HashSet<string> _seen = new(StringComparer.Ordinal);

    public TenantEventRecorder(KubernetesApiClient api, string node, TimeProvider time, ILogger logger)
    {
        _api = api;
        _node = node;
        _time = time;
        _logger = logger;
        _posting = Task.Run(PostLoopAsync);
    }

    /// <summary>Queues the notices of one build that were not queued before; forgets those the build no longer has.</summary>
    public void Record(IReadOnlyList<TenantNotice> notices)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var notice in notices)
        {
            var key = $"{notice.Namespace}/{notice.Name}|{notice.ResourceVersion}|{notice.Reason}";
            if (seen.Add(key) && !_seen.Contains(key))
            {
                _pending.Writer.TryWrite(notice);
            }
        }
        _seen = seen;
    }

    private async Task PostLoopAsync()
    {
        var token = _stopping.Token;
        try
        {
            await foreach (var notice in _pending.Reader.ReadAllAsync(token).ConfigureAwait(false))
            {
                try
                {
                    await _api.CreateAsync($"/api/v1/namespaces/{Uri.EscapeDataString(notice.Namespace)}/events", EventOf(notice).ToJsonString(), token).ConfigureAwait(false);
                }
                catch (Exception ex) when (!token.IsCancellationRequested && ex is HttpRequestException or IOException or KubernetesApiException or OperationCanceledException)
                {
                    KubernetesLog.EventFailed(_logger, notice.Reason, notice.Namespace, notice.Name, ex.Message);
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
    }

    private JsonObject EventOf(TenantNotice notice)
    {
        var now = _time.GetUtcNow().ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{notice.Uid}|{notice.ResourceVersion}|{notice.Reason}|{_node}")))[..16];
        var name = notice.Name.Length > 200 ? notice.Name[..200] : notice.Name;
        var message = notice.Message.Length > MaxMessageLength ? notice.Message[..MaxMessageLength] : notice.Message;
        return new JsonObject
        {
            ["apiVersion"] = "v1",
            ["kind"] = "Event",
            ["metadata"] = new JsonObject { ["name"] = $"{name}.{hash}", ["namespace"] = notice.Namespace },
            ["involvedObject"] = new JsonObject
            {
                ["apiVersion"] = WatchedKind.Tenants.ApiVersion,
                ["kind"] = WatchedKind.Tenants.Kind,
                ["namespace"] = notice.Namespace,
                ["name"] = notice.Name,
                ["uid"] = notice.Uid,
                ["resourceVersion"] = notice.ResourceVersion,
            },
            ["reason"] = notice.Reason,
            ["message"] = message,
            ["type"] = "Warning",
            ["source"] = new JsonObject { ["component"] = "shared-runtime", ["host"] = _node },
            ["reportingComponent"] = "sharedruntime.io/shared-runtime",
            ["reportingInstance"] = _node,
            ["firstTimestamp"] = now,
            ["lastTimestamp"] = now,
            ["count"] = 1,
        };
    }

    public async ValueTask DisposeAsync()
    {
        _pending.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await _posting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stopping.Dispose();
    }
}
