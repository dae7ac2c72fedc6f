using System.Collections.Frozen;
using System.Net;
using Microsoft.Extensions.Logging;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Tenancy;

/// <summary>A running pod of this node as its address identifies it.</summary>
internal sealed record PodIdentity(string Namespace, string Name, string ServiceAccount, IReadOnlyDictionary<string, string> Labels);

/// <summary>
/// The running pods of this node by address, as the Kubernetes source last saw them (empty elsewhere), and the check
/// that binds a Tenant's token to its pods: a tenant with <c>spec.identity</c> is admitted only when the request's
/// remote address is a running pod that matches it. Tenants without one are not looked at. The map is replaced whole;
/// a request reads it once and takes no lock.
/// </summary>
public sealed class PodDirectory(ILogger? logger = null)
{
    private volatile FrozenDictionary<IPAddress, PodIdentity> _pods = FrozenDictionary<IPAddress, PodIdentity>.Empty;

    /// <summary>How many pod addresses are known.</summary>
    public int Count => _pods.Count;

    internal void Replace(FrozenDictionary<IPAddress, PodIdentity> pods) => _pods = pods;

    /// <summary>
    /// <paramref name="tenant"/> when it may be served from <paramref name="remote"/>, else null (then the caller
    /// answers as for an unknown token). The one check between resolving a tenant and admitting its request.
    /// </summary>
    public TenantContext? Admit(TenantContext? tenant, IPAddress? remote)
    {
        if (tenant?.Config.Identity is not { } identity)
        {
            return tenant;
        }
        if (remote is not null && _pods.TryGetValue(remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote, out var pod) &&
            identity.Matches(pod.Namespace, pod.ServiceAccount, pod.Labels))
        {
            return tenant;
        }
        if (logger is not null)
        {
            CoreLog.TokenFromForeignAddress(logger, tenant.AppId, remote?.ToString() ?? "unknown");
        }
        return null;
    }
}
