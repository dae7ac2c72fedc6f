namespace SharedRuntime.Components;

/// <summary>The etag given does not match the stored one (Dapr: 409 / ABORTED).</summary>
internal sealed class StateETagMismatchException(string key) : ComponentException($"possible etag mismatch for key {key}");

/// <summary>The etag given cannot be an etag of this store (Dapr: 400 / INVALID_ARGUMENT).</summary>
internal sealed class StateETagInvalidException(string key) : ComponentException($"invalid etag value for key {key}");

/// <summary>
/// The store's backend refused the request because of what it carries (a key or value it cannot store, a key holding
/// another kind of data): the caller's error (Dapr: 400 / INVALID_ARGUMENT), which says nothing about the backend's
/// health, so no breaker counts it.
/// </summary>
internal sealed class StateRequestRejectedException(string message, Exception? inner = null) : ComponentRequestRejectedException(message, inner);

/// <summary>
/// The store refused a write whole because it would leave more keys or bytes than its <see cref="StateAllowance"/>
/// (Dapr: 507 ERR_TENANT_QUOTA_EXCEEDED / RESOURCE_EXHAUSTED). The caller's doing, so no breaker counts it.
/// </summary>
internal sealed class StateQuotaExceededException(string detail) : ComponentRequestRejectedException(detail)
{
    /// <summary>Too many keys: <paramref name="needed"/> more on top of <paramref name="used"/> of <paramref name="allowed"/>.</summary>
    public static StateQuotaExceededException Keys(long needed, long used, long allowed) =>
        new($"the write needs {needed} new keys and the tenant has {used} of its {allowed}");

    /// <summary>Too many bytes: <paramref name="needed"/> more on top of <paramref name="used"/> of <paramref name="allowed"/>.</summary>
    public static StateQuotaExceededException Bytes(long needed, long used, long allowed) =>
        new($"the write needs {needed} more bytes and the tenant stores {used} of its {allowed}");
}
