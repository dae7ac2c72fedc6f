namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// Something a Tenant's owners should see with <c>kubectl describe</c>: the Tenant (by namespace, name, uid and the
/// resourceVersion it was read at), a reason and a message. Posted as a Kubernetes Event by <see cref="TenantEventRecorder"/>.
/// </summary>
internal sealed record TenantNotice(string Namespace, string Name, string Uid, string ResourceVersion, string Reason, string Message)
{
    /// <summary>The Tenant is not served: a bad field, a clash, a Secret or Configuration it names is missing.</summary>
    public const string Refused = "TenantRefused";

    /// <summary>The Tenant is served, with limits lowered to its namespace's ceiling.</summary>
    public const string Clamped = "LimitsClamped";
}
