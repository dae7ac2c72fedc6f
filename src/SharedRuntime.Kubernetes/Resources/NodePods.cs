using System.Collections.Frozen;
using System.Net;
using System.Text.Json;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// This node's Pods as a map from address to identity (namespace, service account, labels), for tokens bound to their
/// pods. Only running pods count, and never one on the host network: its address is the node's, shared by every such
/// pod and the node itself, so it proves nothing about who is calling.
/// </summary>
internal static class NodePods
{
    public static FrozenDictionary<IPAddress, PodIdentity> Map(IReadOnlyList<JsonElement> pods)
    {
        var map = new Dictionary<IPAddress, PodIdentity>();
        foreach (var pod in pods)
        {
            var metadata = Property(pod, "metadata");
            var spec = Property(pod, "spec");
            var status = Property(pod, "status");
            if (Text(status, "phase") != "Running" || Property(spec, "hostNetwork").ValueKind == JsonValueKind.True)
            {
                continue;
            }
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            if (Property(metadata, "labels") is { ValueKind: JsonValueKind.Object } given)
            {
                foreach (var label in given.EnumerateObject())
                {
                    if (label.Value.ValueKind == JsonValueKind.String)
                    {
                        labels[label.Name] = label.Value.GetString()!;
                    }
                }
            }
            var identity = new PodIdentity(Text(metadata, "namespace") ?? "", Text(metadata, "name") ?? "",
                Text(spec, "serviceAccountName") ?? "default", labels);
            foreach (var address in Addresses(status))
            {
                map[address] = identity;
            }
        }
        return map.ToFrozenDictionary();
    }

    private static IEnumerable<IPAddress> Addresses(JsonElement status)
    {
        if (Text(status, "podIP") is { } single && IPAddress.TryParse(single, out var first))
        {
            yield return first;
        }
        if (Property(status, "podIPs") is { ValueKind: JsonValueKind.Array } all)
        {
            foreach (var entry in all.EnumerateArray())
            {
                if (Text(entry, "ip") is { } ip && IPAddress.TryParse(ip, out var address))
                {
                    yield return address;
                }
            }
        }
    }

    private static JsonElement Property(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) ? value : default;

    private static string? Text(JsonElement element, string name) =>
        Property(element, name) is { ValueKind: JsonValueKind.String } value ? value.GetString() : null;
}
