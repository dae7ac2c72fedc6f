using System.Text.Json;
using SharedRuntime.Kubernetes.Replicas;

namespace SharedRuntime.Tests.Kubernetes;

public sealed class ReadyReplicasTests
{
    private static JsonElement Slice(string addressType, params (string Pod, bool? Ready)[] endpoints) =>
        JsonDocument.Parse(JsonSerializer.Serialize(new
        {
            addressType,
            endpoints = endpoints.Select(e => new
            {
                addresses = new[] { addressType == "IPv6" ? "fd00::1" : "10.0.0.1" },
                conditions = e.Ready is { } ready ? new Dictionary<string, bool> { ["ready"] = ready } : [],
                targetRef = new { kind = "Pod", name = e.Pod, uid = "uid-" + e.Pod },
            }),
        })).RootElement.Clone();

    [Fact]
    public void ReadyAndUnknownEndpointsCountNotReadyOnesDoNot()
    {
        Assert.Equal(2, ReadyReplicas.Count([Slice("IPv4", ("a", true), ("b", null), ("c", false))]));
    }

    [Fact]
    public void ADualStackServiceCountsEachPodOnce()
    {
        Assert.Equal(3, ReadyReplicas.Count([Slice("IPv4", ("a", true), ("b", true)), Slice("IPv4", ("c", true)), Slice("IPv6", ("a", true), ("b", true), ("c", true))]));
    }

    [Fact]
    public void ThisRuntimeCountsEvenBeforeItsEndpointIsReady()
    {
        Assert.Equal(1, ReadyReplicas.Count([]));
        Assert.Equal(1, ReadyReplicas.Count([Slice("IPv4", ("a", false))]));
    }
}
