using System.Collections.Frozen;

namespace SharedRuntime.Policy;

/// <summary>
/// The methods of the gRPC service <c>dapr.proto.runtime.v1.Dapr</c> each API access rule names, by
/// <c>name.version</c> as Dapr groups them (<c>state.v1</c>, <c>publish.v1alpha1</c>, ...).
/// </summary>
internal static class DaprGrpcApis
{
    public const string ServicePrefix = "/dapr.proto.runtime.v1.Dapr/";

    public static readonly FrozenDictionary<string, string[]> MethodsByRule = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["invoke.v1"] = ["InvokeService"],
        ["state.v1"] = ["GetState", "GetBulkState", "SaveState", "DeleteState", "DeleteBulkState", "ExecuteStateTransaction"],
        ["state.v1alpha1"] = ["QueryStateAlpha1"],
        ["publish.v1"] = ["PublishEvent", "BulkPublishEvent"],
        ["publish.v1alpha1"] = ["BulkPublishEventAlpha1"],
        ["bindings.v1"] = ["InvokeBinding"],
        ["secrets.v1"] = ["GetSecret", "GetBulkSecret"],
        ["metadata.v1"] = ["GetMetadata", "SetMetadata"],
        ["configuration.v1alpha1"] = ["GetConfigurationAlpha1", "SubscribeConfigurationAlpha1", "UnsubscribeConfigurationAlpha1"],
        ["configuration.v1"] = ["GetConfiguration", "SubscribeConfiguration", "UnsubscribeConfiguration"],
        ["lock.v1alpha1"] = ["TryLockAlpha1"],
        ["unlock.v1alpha1"] = ["UnlockAlpha1"],
        ["shutdown.v1"] = ["Shutdown"],
        ["subscribe.v1alpha1"] = ["SubscribeTopicEventsAlpha1"],
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
