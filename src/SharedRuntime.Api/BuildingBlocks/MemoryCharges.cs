using SharedRuntime.Admission;

namespace SharedRuntime.BuildingBlocks;

/// <summary>
/// Charges what a request holds to its tenant's memory budget before it is allocated. Over budget is a Dapr error
/// (<c>ERR_TENANT_MEMORY_BUDGET</c>): 413 when the request alone can never fit, 429 while other requests hold the
/// budget or the node's ceiling.
/// </summary>
internal static class MemoryCharges
{
    public const string ErrorCode = "ERR_TENANT_MEMORY_BUDGET";

    /// <summary>Charges <paramref name="bytes"/> for <paramref name="what"/>; throws the tenant's error when it does not fit.</summary>
    public static void Charge(this RequestMemory? memory, long bytes, string what)
    {
        if (memory.ChargeOrRefuse(bytes, what) is { } refused)
        {
            throw refused;
        }
    }

    /// <summary>
    /// Charges <paramref name="bytes"/> for <paramref name="what"/>; the tenant's error when it does not fit, as a value
    /// for a caller that answers it itself, null when charged.
    /// </summary>
    public static DaprApiException? ChargeOrRefuse(this RequestMemory? memory, long bytes, string what)
    {
        if (memory is null)
        {
            return null;
        }
        var result = memory.TryCharge(bytes);
        if (result == MemoryCharge.Charged)
        {
            return null;
        }
        memory.RecordRefusal(result);
        return Refused(memory, result, bytes, what);
    }

    private static DaprApiException Refused(RequestMemory memory, MemoryCharge refusal, long bytes, string what)
    {
        var budget = memory.Budget;
        var node = budget.Node ?? budget;
        return refusal switch
        {
            MemoryCharge.NeverFits => new DaprApiException(413, ErrorCode,
                $"{what} needs {memory.Charged + bytes} bytes of memory at once, more than app {memory.AppId} may hold " +
                $"(maxMemoryBytes {budget.Limit}, node ceiling {node.Limit})"),
            MemoryCharge.NodeFull => new DaprApiException(429, ErrorCode,
                $"the runtime's memory ceiling shared by all apps on this node is reached ({node.InUse} of {node.Limit} bytes held); " +
                $"{what} of app {memory.AppId} needs {bytes} more bytes")
            {
                RetryAfterSeconds = 1,
            },
            _ => new DaprApiException(429, ErrorCode,
                $"app {memory.AppId} holds {budget.InUse} of its {budget.Limit} bytes of memory (maxMemoryBytes) in requests in flight; " +
                $"{what} needs {bytes} more bytes")
            {
                RetryAfterSeconds = 1,
            },
        };
    }
}
