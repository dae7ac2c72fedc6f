using SharedRuntime.Components;
using SharedRuntime.Routing;
using SharedRuntime.Tenancy;

namespace SharedRuntime.BuildingBlocks;

/// <summary>Output bindings for one tenant, shared by HTTP and gRPC: a call runs through the tenant's route (its Resiliency outbound policy).</summary>
internal sealed class BindingApi
{
    public async ValueTask<BindingResponse> InvokeAsync(TenantContext tenant, string name, BindingRequest request, CancellationToken cancellationToken)
    {
        if (!tenant.Routes.Bindings.TryFind(name, out var route) || route.Instance is IInputBinding and not IOutputBinding)
        {
            // An input-only binding (bindings.cron) is no output binding, as in Dapr.
            // A name the tenant cannot see is the caller's mistake, not a failed binding (Dapr answers 500 here).
            throw new DaprApiException(404, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: couldn't find output binding {name}");
        }
        if (route.Instance is not IOutputBinding binding)
        {
            throw new DaprApiException(500, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {route.Component.Error}");
        }
        if (string.IsNullOrEmpty(request.Operation))
        {
            throw Errors.Malformed("operation field is missing from request");
        }
        if (!binding.Operations.Contains(request.Operation, StringComparer.OrdinalIgnoreCase))
        {
            throw new DaprApiException(400, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: binding {name} does not support operation {request.Operation}; supported: {string.Join(", ", binding.Operations)}");
        }
        try
        {
            return await route.RunAsync((binding, request), static (state, token) => state.binding.InvokeAsync(state.request, token), cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException ex)
        {
            // The binding refused what the request carried (a metadata value it cannot send): the caller's error.
            throw new DaprApiException(400, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is not DaprApiException and not OperationCanceledException)
        {
            throw new DaprApiException(500, "ERR_INVOKE_OUTPUT_BINDING", $"error invoking output binding {name}: {ex.Message}", ex);
        }
    }
}
