using System.Text.Json;
using Grpc.Core;

namespace SharedRuntime.FuzzTests;

/// <summary>
/// Whether an answer to a generated request is one the runtime may give. Any 4xx is the input's fault and fine. A 5xx
/// is fine only when it reports a failure the input could not cause: the app's own answer passed through, or an app
/// that timed out or whose breaker is open. Anything else (an internal error, a component error caused by what the
/// request carried, a 5xx without a Dapr error body) is a finding.
/// </summary>
internal static class FuzzVerdict
{
    /// <summary>Null when the HTTP answer is acceptable, else what is wrong with it.</summary>
    public static string? OfHttp(int status, bool fromApp, string body)
    {
        if (status < 500 || fromApp)
        {
            return null;
        }
        var (code, message) = DaprError(body);
        if (code is null)
        {
            return $"{status} without a Dapr error body";
        }
        // A tenant quota refusal (507, as the state quota answers) is the tenant's own limit, not a server error.
        if (status == 507 && code.StartsWith("ERR_TENANT_", StringComparison.Ordinal))
        {
            return null;
        }
        return IsBackendFailure(code, message) ? null : $"{status} {code}";
    }

    /// <summary>Null when the gRPC status is acceptable, else what is wrong with it.</summary>
    public static string? OfGrpc(StatusCode status, string detail)
    {
        switch (status)
        {
            case StatusCode.Unknown:
                // UNKNOWN is also how an app's unusual 4xx answer to InvokeService maps (as gRPC's HTTP mapping has it).
                return detail.StartsWith("Exception was thrown by handler", StringComparison.Ordinal) ? $"{status}: the handler threw" : null;
            case StatusCode.Internal when detail.StartsWith("app ", StringComparison.Ordinal) && detail.Contains(" answered 5", StringComparison.Ordinal):
                // The app's own 5xx to InvokeService.
                return null;
            case StatusCode.Internal or StatusCode.DataLoss or StatusCode.Unavailable:
                var separator = detail.IndexOf(": ", StringComparison.Ordinal);
                var code = separator > 0 ? detail[..separator] : "";
                if (status == StatusCode.Unavailable && !code.StartsWith("ERR_", StringComparison.Ordinal))
                {
                    // Not a Dapr error: the gRPC server itself (a draining connection).
                    return null;
                }
                return code.StartsWith("ERR_", StringComparison.Ordinal) && IsBackendFailure(code, detail[(separator + 2)..]) ? null : $"{status} {(code.StartsWith("ERR_", StringComparison.Ordinal) ? code : "")}".TrimEnd();
            default:
                return null;
        }
    }

    /// <summary>Server errors that report the state of an app or backend, not something the request carried.</summary>
    private static bool IsBackendFailure(string code, string message) => code switch
    {
        // The target app timed out, refused the connection, or its breaker is open after its own failures.
        "ERR_DIRECT_INVOKE" => message.Contains("circuit", StringComparison.OrdinalIgnoreCase) || message.Contains("timed out", StringComparison.OrdinalIgnoreCase) ||
                               message.Contains("timeout", StringComparison.OrdinalIgnoreCase) || message.Contains("answered 5", StringComparison.Ordinal),
        // The binding's target (the attacker's app) answered an error status or timed out, or the binding's breaker is open.
        "ERR_INVOKE_OUTPUT_BINDING" => message.Contains("received status code", StringComparison.Ordinal) || message.Contains("circuit", StringComparison.OrdinalIgnoreCase) ||
                                       message.Contains("timed out", StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    private static (string? Code, string Message) DaprError(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object &&
                json.RootElement.TryGetProperty("errorCode", out var code) && code.ValueKind == JsonValueKind.String)
            {
                return (code.GetString(), json.RootElement.TryGetProperty("message", out var message) && message.ValueKind == JsonValueKind.String ? message.GetString() ?? "" : "");
            }
        }
        catch (JsonException)
        {
        }
        return (null, "");
    }
}
